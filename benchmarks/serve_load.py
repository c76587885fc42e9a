"""Serving load test: the custintel BentoML server vs a straightforward FastAPI app (stock Feast
`get_online_features` + torch per request, benchmarks/serve_baseline.py), in the same run.

Builds a servable data dir (tests/servable.py: generated customers, features, Feast SQLite online
store, a one-epoch champion), starts both servers (one worker each), then for each request size
(1 and 100 random known ids) and each concurrency level runs an async httpx client in a second
process for --duration seconds against one server, then the other (alternating, so load from other
work on the machine hits both alike), and reports requests/s and p50/p99 latency.

    PYTHONPATH=. python benchmarks/serve_load.py --customers 2000 --concurrency 1 4 16 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def _load(url: str, n_ids: int, concurrency: int, duration: float, customers: int, seed: int) -> dict:
    import httpx

    rng = np.random.default_rng(seed)
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def worker(client):
        nonlocal errors
        while time.perf_counter() < stop:
            ids = rng.integers(1, customers + 1, n_ids).tolist()
            started = time.perf_counter()
            response = await client.post("/predict", json={"customer_ids": ids})
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.post("/predict", json={"customer_ids": [1]})  # warm the connection and the server
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "errors": errors,
            "req_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def client_main(args) -> None:
    print(json.dumps(asyncio.run(_load(args.url, args.ids, args.concurrency[0], args.duration, args.customers,
                                       args.seed))))


def _client(url: str, n_ids: int, concurrency: int, duration: float, customers: int, seed: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--client", "--url", url, "--ids", str(n_ids),
                           "--concurrency", str(concurrency), "--duration", str(duration),
                           "--customers", str(customers), "--seed", str(seed)],
                          capture_output=True, text=True, cwd=ROOT, timeout=duration + 300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait(proc, url: str, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def main(args) -> None:
    import yaml

    from custintel import server
    from tests.conftest import tiny_params
    from tests.servable import serving_env

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tiny_params(tmp / "data", n_customers=args.customers)
        raw["train"]["max_epochs"] = 1
        raw["train"]["tuning"]["n_trials"] = 1
        params = tmp / "params.yaml"
        params.write_text(yaml.safe_dump(raw))
        env = serving_env(params)
        built = subprocess.run([sys.executable, "-m", "tests.servable", str(params)], capture_output=True,
                               text=True, cwd=ROOT, env=env, timeout=1800)
        if built.returncode != 0:
            raise RuntimeError(built.stderr[-3000:])
        model_dir = json.loads(built.stdout.strip().splitlines()[-1])["run_dir"] + "/model"
        ports = {"custintel": server.free_port(), "baseline": server.free_port()}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        procs = {"custintel": server.start(params, "127.0.0.1", ports["custintel"], tmp / "custintel.log",
                                           env),
                 "baseline": subprocess.Popen(
                     [sys.executable, "-m", "uvicorn", "benchmarks.serve_baseline:app",
                      "--host", "127.0.0.1", "--port", str(ports["baseline"]), "--workers", "1",
                      "--log-level", "warning"],
                     cwd=ROOT, env={**env, "BASELINE_MODEL_DIR": model_dir, "PYTHONPATH": str(ROOT)},
                     stdout=open(tmp / "baseline.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                     start_new_session=True)}
        results = []
        try:
            for name, proc in procs.items():
                _wait(proc, urls[name])
            for n_ids in args.ids:
                for concurrency in args.concurrency:
                    row = {"ids": n_ids, "concurrency": concurrency}
                    for name in ("baseline", "custintel"):
                        row[name] = _client(urls[name], n_ids, concurrency, args.duration, args.customers,
                                            args.seed)
                    ratio = row["custintel"]["req_per_s"] / row["baseline"]["req_per_s"]
                    row["req_per_s_ratio"] = round(ratio, 2)
                    print(json.dumps(row), flush=True)
                    results.append(row)
        finally:
            for proc in procs.values():
                server.stop(proc)
    summary = {"customers": args.customers, "duration_s": args.duration, "results": results}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--ids", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.client:
        parsed.ids = parsed.ids[0]
        client_main(parsed)
    else:
        main(parsed)
