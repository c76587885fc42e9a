"""Does BentoML's adaptive batching help this model? One probe service (benchmarks/batching_service.py)
serves the same scoring without batching (`/predict_single`) and with it (`/predict_batched`,
`@bentoml.api(batchable=True)`); the load client of benchmarks/serve_load.py drives each in turn
(alternating, --repeats times) at each concurrency; medians of requests/s, client p50/p99 and the
server's CPU ms per request are printed with the ratio batched / single.

    PYTHONPATH=. python benchmarks/serve_batching.py --params <servable params.yaml> --concurrency 1 4 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PATHS = {"single": "/predict_single", "batched": "/predict_batched"}


def main(args) -> None:
    import tempfile

    from benchmarks.serve_load import _build, _client, _wait
    from custintel import server
    from tests.servable import serving_env

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        params = args.params.resolve() if args.params else _build(Path(tmp), args.customers)
        port = server.free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**serving_env(params), "BATCHING_MAX_LATENCY_MS": str(args.max_latency_ms),
               server.PARAMS_ENV: str(params)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "benchmarks.batching_service:BatchingProbe",
             "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(ROOT)],
            env=env, stdout=open(Path(tmp) / "probe.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        try:
            _wait(proc, url)
            for repeat in range(args.repeats):
                for n_ids in args.ids:
                    for concurrency in args.concurrency:
                        order = ("single", "batched") if repeat % 2 == 0 else ("batched", "single")
                        for name in order:
                            row = {"ids": n_ids, "concurrency": concurrency, "api": name, "repeat": repeat,
                                   **_client(url, proc.pid, n_ids, concurrency, args.duration, args.customers,
                                             args.seed + repeat, PATHS[name])}
                            print(json.dumps(row), flush=True)
                            rows.append(row)
        finally:
            server.stop(proc)
    print("| ids | conc. | single req/s, p50 / p99 ms, CPU ms/req | batched req/s, p50 / p99 ms, CPU ms/req "
          "| req/s ratio | load |")
    print("|---|---|---|---|---|---|")
    for n_ids in args.ids:
        for concurrency in args.concurrency:
            med = {}
            for name in PATHS:
                key = (n_ids, concurrency, name)
                runs = [r for r in rows if (r["ids"], r["concurrency"], r["api"]) == key]
                med[name] = {key: statistics.median(r[key] for r in runs)
                             for key in ("req_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")}
                med[name]["errors"] = sum(r["errors"] for r in runs)
                med[name]["load"] = (min(r["load"][0] for r in runs), max(r["load"][1] for r in runs))
            s, b = med["single"], med["batched"]
            print(f"| {n_ids} | {concurrency} | {s['req_per_s']:.0f}, {s['p50_ms']:.2f} / {s['p99_ms']:.2f}, "
                  f"{s['server_cpu_ms_per_request']:.2f} | {b['req_per_s']:.0f}, {b['p50_ms']:.2f} / "
                  f"{b['p99_ms']:.2f}, {b['server_cpu_ms_per_request']:.2f} | "
                  f"{b['req_per_s'] / s['req_per_s']:.2f} "
                  f"| {min(s['load'][0], b['load'][0])}-{max(s['load'][1], b['load'][1])} |"
                  + (f" errors: {s['errors']} / {b['errors']}" if s["errors"] or b["errors"] else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--params", type=Path,
                        help="reuse this servable data dir's params (tests/servable.py)")
    parser.add_argument("--ids", type=int, nargs="+", default=[1])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-latency-ms", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    main(parser.parse_args())
