"""Serving load test: the custintel BentoML server vs a straightforward FastAPI app (stock Feast
`get_online_features` + torch per request, benchmarks/serve_baseline.py), in the same run.

Builds a servable data dir (tests/servable.py: generated customers, features, Feast online store,
a one-epoch champion; or reuses one with --params), and for each online store (SQLite, and Redis
on a throwaway redis-server materialized from the same data) starts both servers with the same
number of workers. Then, --repeats times, for each request size (1 and 100 random known ids) and each
concurrency level, a keep-alive HTTP/1.1 client in a second process (plain asyncio streams: far less
client overhead than an HTTP library, so the client-side figures are mostly the server's) drives one
server for --duration seconds, then the other (alternating, so load from other work on the machine
hits both alike). Per setting it reports the medians over repeats of requests/s and client-side
p50/p99, the server-side p50/p99 (the `app` time of each response's Server-Timing header,
serving/timing.py; the baseline sends the same header) and, for the custintel server, the median
time per stage (parse, fetch, transform, model, segment, assemble, encode; `framework` = the
client-side latency minus the stages). The load average is sampled around every client run.

    PYTHONPATH=. python benchmarks/serve_load.py --concurrency 1 4 16 --duration 2 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STAGES = ("parse", "fetch", "transform", "model", "segment", "assemble", "encode")


# ---- the client (runs in its own process) ----

async def _request(reader, writer, head: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    writer.write(head + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"response without content-length: {headers}")
    return status, headers, await reader.readexactly(int(headers["content-length"]))


async def _load(host: str, port: int, n_ids: int, concurrency: int, duration: float, customers: int,
                seed: int, path: str = "/predict") -> dict:
    from serving.timing import parse_header

    rng = np.random.default_rng(seed)
    latencies: list[float] = []
    timings: list[dict[str, float]] = []
    errors = 0

    def request_bytes() -> tuple[bytes, bytes]:
        body = json.dumps({"customer_ids": rng.integers(1, customers + 1, n_ids).tolist()}).encode()
        head = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode()
        return head, body

    warm = asyncio.Barrier(concurrency + 1)
    stop = 0.0

    async def worker():
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await _request(reader, writer, *request_bytes())  # warm the connection and the server
            await warm.wait()
            while True:  # at least one measured request each, however slow
                head, body = request_bytes()
                started = time.perf_counter()
                status, headers, _ = await _request(reader, writer, head, body)
                latencies.append(time.perf_counter() - started)
                errors += status != 200
                timings.append(parse_header(headers.get("server-timing", "")))
                if time.perf_counter() >= stop:
                    break
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await warm.wait()  # every connection warmed: measure from here
    began = time.perf_counter()
    stop = began + duration
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    app = np.asarray([t["app"] for t in timings if "app" in t])
    stages = {name: round(float(np.median([t.get(name, 0.0) for t in timings])), 3) for name in STAGES
              if any(name in t for t in timings)}
    result = {"requests": len(latencies), "errors": errors, "req_per_s": round(len(latencies) / elapsed, 1),
              "p50_ms": round(float(np.percentile(ms, 50)), 2),
              "p99_ms": round(float(np.percentile(ms, 99)), 2)}
    if len(app):
        result.update(server_p50_ms=round(float(np.percentile(app, 50)), 2),
                      server_p99_ms=round(float(np.percentile(app, 99)), 2))
    if stages:
        result["stages_ms"] = stages
    return result


def client_main(args) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, port = args.url.removeprefix("http://").split(":")
    print(json.dumps(asyncio.run(_load(host, int(port), args.ids[0], args.concurrency[0], args.duration,
                                       args.customers, args.seed, args.path))))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a server: the process and its children (BentoML's workers)."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _client(url: str, pid: int, n_ids: int, concurrency: int, duration: float, customers: int,
            seed: int, path: str = "/predict") -> dict:
    before, cpu_before = os.getloadavg()[0], _cpu_seconds(pid)
    proc = subprocess.run([sys.executable, __file__, "--client", "--url", url, "--ids", str(n_ids),
                           "--concurrency", str(concurrency), "--duration", str(duration),
                           "--customers", str(customers), "--seed", str(seed), "--path", path],
                          capture_output=True, text=True, cwd=ROOT, timeout=duration + 300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # the server's CPU time per request: what the path costs, whatever share of a core it got
    result["server_cpu_ms_per_request"] = round((_cpu_seconds(pid) - cpu_before) * 1000
                                                / max(result["requests"] + 1, 1), 3)
    result["load"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return result


# ---- servers ----

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


def _build(tmp: Path, customers: int) -> Path:
    import yaml

    from tests.conftest import tiny_params
    from tests.servable import serving_env

    raw = tiny_params(tmp / "data", n_customers=customers)
    raw["train"]["max_epochs"] = 1
    raw["train"]["tuning"]["n_trials"] = 1
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    built = subprocess.run([sys.executable, "-m", "tests.servable", str(params)], capture_output=True,
                           text=True, cwd=ROOT, env=serving_env(params), timeout=1800)
    if built.returncode != 0:
        raise RuntimeError(built.stderr[-3000:])
    return params


def _redis_params(params: Path, tmp: Path, stack: ExitStack) -> Path:
    """A redis-server for this run, materialized from `params`' data; the params that use it."""
    import shutil

    import yaml

    from custintel.server import free_port
    from tests.conftest import start_redis, stop_redis
    from tests.servable import materialize_in_child

    workdir = tmp / "redis"
    workdir.mkdir(exist_ok=True)
    proc, url = start_redis(shutil.which("redis-server") or "redis-server", workdir, free_port())
    stack.callback(stop_redis, proc)
    raw = yaml.safe_load(params.read_text())
    raw["feature_store"] = {**raw["feature_store"], "online_store": "redis", "redis_url": url}
    redis_params = tmp / "params-redis.yaml"
    redis_params.write_text(yaml.safe_dump(raw))
    done = materialize_in_child(redis_params)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return redis_params


def _model_dir(params: Path) -> str:
    from custintel import registry
    from custintel.config import load_settings
    from custintel.paths import DataPaths
    from custintel.runtime import configure

    settings = load_settings(params)
    configure(settings)
    tag = registry.champion_tag(DataPaths(settings.data_dir))
    return str(registry.verified_model_path(tag))


def _servers(params: Path, workers: int, logs: Path, stack: ExitStack) -> dict[str, tuple[str, int]]:
    import yaml

    from custintel import server
    from tests.servable import serving_env

    raw = yaml.safe_load(params.read_text())
    if raw.get("serve", {}).get("workers", 1) != workers:  # the same worker count for both servers
        raw["serve"] = {**raw.get("serve", {}), "workers": workers}
        params = logs / f"{params.stem}-workers{workers}.yaml"
        params.write_text(yaml.safe_dump(raw))
    env = serving_env(params)
    ports = {"custintel": server.free_port(), "baseline": server.free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs = {"custintel": server.start(params, "127.0.0.1", ports["custintel"], logs / "custintel.log", env),
             "baseline": subprocess.Popen(
                 [sys.executable, "-m", "uvicorn", "benchmarks.serve_baseline:app",
                  "--host", "127.0.0.1", "--port", str(ports["baseline"]), "--workers", str(workers),
                  "--log-level", "warning", "--no-access-log"],
                 cwd=ROOT, env={**env, "BASELINE_MODEL_DIR": _model_dir(params), "PYTHONPATH": str(ROOT)},
                 stdout=open(logs / "baseline.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                 start_new_session=True)}
    for proc in procs.values():
        stack.callback(server.stop, proc)
    for name, proc in procs.items():
        _wait(proc, urls[name])
    return {name: (urls[name], procs[name].pid) for name in procs}


# ---- summary ----

def _median(runs: list[dict], key: str):
    values = [run[key] for run in runs if key in run]
    return round(statistics.median(values), 2) if values else None


def summarize(rows: list[dict]) -> list[dict]:
    """Medians over repeats per (store, ids, concurrency, server)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["store"], row["ids"], row["concurrency"], row["server"]), []).append(row)
    out = []
    for (store, ids, concurrency, name), runs in groups.items():
        entry = {"store": store, "ids": ids, "concurrency": concurrency, "server": name, "runs": len(runs),
                 "errors": sum(run["errors"] for run in runs)}
        for key in ("req_per_s", "p50_ms", "p99_ms", "server_p50_ms", "server_p99_ms",
                    "server_cpu_ms_per_request"):
            entry[key] = _median(runs, key)
        stages = [run["stages_ms"] for run in runs if "stages_ms" in run]
        if stages:
            entry["stages_ms"] = {name: round(statistics.median(s.get(name, 0.0) for s in stages), 3)
                                  for name in stages[0]}
            entry["framework_p50_ms"] = round(entry["p50_ms"] - sum(entry["stages_ms"].values()), 3)
        entry["load"] = [min(run["load"][0] for run in runs), max(run["load"][1] for run in runs)]
        out.append(entry)
    return out


def table(summary: list[dict]) -> str:
    by_key = {(e["store"], e["ids"], e["concurrency"], e["server"]): e for e in summary}
    lines = ["| store | ids | conc. | baseline req/s | baseline p50 / p99 ms (client; server) "
             "| custintel req/s | custintel p50 / p99 ms (client; server) | req/s ratio "
             "| server CPU ms/request baseline; custintel "
             "| load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (store, ids, concurrency, name), ours in by_key.items():
        if name != "custintel":
            continue
        base = by_key[store, ids, concurrency, "baseline"]
        lines.append(
            f"| {store} | {ids} | {concurrency} | {base['req_per_s']:.0f} | "
            f"{base['p50_ms']} / {base['p99_ms']}; {base['server_p50_ms']} / {base['server_p99_ms']} | "
            f"{ours['req_per_s']:.0f} | {ours['p50_ms']} / "
            f"{ours['p99_ms']}; {ours['server_p50_ms']} / {ours['server_p99_ms']} | "
            f"{ours['req_per_s'] / base['req_per_s']:.2f} | {base['server_cpu_ms_per_request']}; "
            f"{ours['server_cpu_ms_per_request']} | {ours['load'][0]}-{ours['load'][1]} |")
    lines += ["", "| store | ids | " + " | ".join(STAGES) + " | framework (client p50 - stages) |",
              "|---|---|" + "---|" * (len(STAGES) + 1)]
    for (store, ids, concurrency, name), ours in by_key.items():
        if name == "custintel" and concurrency == min(c for s, i, c, _ in by_key if (s, i) == (store, ids)):
            stages = ours.get("stages_ms", {})
            lines.append(f"| {store} | {ids} | " + " | ".join(f"{stages.get(s, 0):.3f}" for s in STAGES)
                         + f" | {ours.get('framework_p50_ms')} |")
    return "\n".join(lines)


def main(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        params = args.params.resolve() if args.params else _build(tmp, args.customers)
        for store in args.stores:
            store_params = params if store == "sqlite" else _redis_params(params, tmp, stack)
            with ExitStack() as servers:
                urls = _servers(store_params, args.workers, tmp, servers)
                for repeat in range(args.repeats):
                    for n_ids in args.ids:
                        for concurrency in args.concurrency:
                            order = ("baseline", "custintel")[::1 if repeat % 2 == 0 else -1]
                            for name in order:
                                measured = _client(*urls[name], n_ids, concurrency, args.duration,
                                                   args.customers, args.seed + repeat)
                                row = {"store": store, "ids": n_ids, "concurrency": concurrency,
                                       "server": name, "repeat": repeat, **measured}
                                print(json.dumps(row), flush=True)
                                rows.append(row)
    summary = summarize(rows)
    print(json.dumps({"customers": args.customers, "duration_s": args.duration, "repeats": args.repeats,
                      "workers": args.workers, "summary": summary}, indent=1))
    print(table(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--params", type=Path,
                        help="reuse this servable data dir's params (tests/servable.py)")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"])
    parser.add_argument("--ids", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/predict", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.client:
        client_main(parsed)
    else:
        main(parsed)
