"""Online read latency through the feature service: stock Feast vs custintel's fast reader, SQLite and Redis.

Materializes N customers (default 20,000) x every feature column of the current feature groups (the
synthetic offline parquet of benchmarks/materialize.py) with `custintel materialize`, then times,
in-process, requests of 1 and of 100 random customer ids (about 1% unknown), each request read by:

- `stock_raw`: `store.get_online_features(features=service, entity_rows=...).to_dict()` (Feast alone);
- `stock`: `feature_store.stock_online_features` (the serving path before the fast reader: the
  above plus the TTL check and a DataFrame);
- `fast`: `feature_store.online_features` through custintel.online_reader (TTL and DataFrame included).

`stock_raw` and `fast` take turns on the same ids, request by request, so load from other work on the
machine hits them alike; `stock` (slow: it looks the TTL up in the registry per feature) runs only on
the first --check timed requests, where fast must equal it exactly. Besides wall-clock latency, each
path reports `cpu_p50_ms` / `cpu_p99_ms`: this thread's CPU time per request (time.thread_time), which
leaves out the time the process waited for a core (on a loaded machine, what the wall p99 mostly is)
but also the time a Redis round trip waits for the server. Redis uses a
throwaway redis-server on a free port (skipped when none is installed).

    PYTHONPATH=. python benchmarks/online_read.py --customers 20000 --requests 2000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.materialize import _settings_raw, _start_redis, _stop_redis, write_offline  # noqa: E402

PATHS = ("stock_raw", "stock", "fast")


def _readers(store, names, as_of):
    from custintel import feature_store
    from custintel.features.schema import ENTITY_KEY

    service = feature_store.feature_service(store)

    def stock_raw(ids):
        return store.get_online_features(features=service, entity_rows=[{ENTITY_KEY: int(i)} for i in ids]
                                         ).to_dict()

    return {"stock_raw": stock_raw,
            "stock": lambda ids: feature_store.stock_online_features(store, ids, names, as_of=as_of),
            "fast": lambda ids: feature_store.online_features(store, ids, names, as_of=as_of)}


def _stats(seconds: list[float], cpu_seconds: list[float]) -> dict:
    ms, cpu = np.asarray(seconds) * 1000, np.asarray(cpu_seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "cpu_p50_ms": float(np.percentile(cpu, 50)),
            "cpu_p99_ms": float(np.percentile(cpu, 99))}


def bench_backend(backend: str, data_dir: Path, url: str | None, customers: int, requests: int,
                  sizes: list[int], check: int, sqlite_layout: str = "compact") -> dict:
    from custintel import feature_store
    from custintel.config import settings_from_dict

    settings = settings_from_dict(_settings_raw(data_dir, backend, url, sqlite_layout=sqlite_layout))
    store = feature_store.open_store(settings)
    feature_store.apply_definitions(store, settings)
    start = time.perf_counter()
    feature_store.materialize_latest(store, settings)
    materialize_s = time.perf_counter() - start
    names = feature_store.service_feature_names(store)
    as_of = settings.snapshot_dates()[-1]
    readers = _readers(store, names, as_of)
    rng = np.random.default_rng(7)
    out: dict = {"materialize_s": materialize_s, "features": len(names)}
    for size in sizes:
        draws = [rng.integers(0, int(customers * 1.01), size=size).tolist() for _ in range(requests + 50)]
        times: dict[str, list[float]] = {path: [] for path in PATHS}
        cpu_times: dict[str, list[float]] = {path: [] for path in PATHS}
        for n, ids in enumerate(draws):
            checked = 50 <= n < 50 + check  # the stock serving path (slow) runs on these only
            paths = PATHS if checked or n < 50 else ("stock_raw", "fast")
            order = paths[n % len(paths):] + paths[:n % len(paths)]  # take turns going first
            results = {}
            for path in order:
                c0, t0 = time.thread_time(), time.perf_counter()
                results[path] = readers[path](ids)
                elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
                if n >= 50:  # warm-up
                    times[path].append(elapsed)
                    cpu_times[path].append(cpu)
            if checked:
                stock = results["stock"].astype({name: float for name in names})
                pd.testing.assert_frame_equal(results["fast"], stock, check_exact=True)
        stats = {path: _stats(times[path], cpu_times[path]) for path in PATHS}
        stats["stock"]["requests"] = len(times["stock"])
        for base in ("stock_raw", "stock"):
            for q in ("p50_ms", "p99_ms"):
                stats[f"{q[:3]}_speedup_vs_{base}"] = stats[base][q] / stats["fast"][q]
        out[f"{size}_ids"] = stats
        print(json.dumps({backend: {f"{size}_ids": stats}}, indent=2), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--snapshots", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per size and path")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--check", type=int, default=300,
                        help="requests on which the stock serving path also runs and equals fast")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    parser.add_argument("--sqlite-layout", choices=["compact", "feast"], default="compact",
                        help="feature_store.sqlite_layout of the SQLite store (both paths read it)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="custintel-online-read-bench-"))
    redis_process = None
    results: dict = {"customers": args.customers, "requests": args.requests}
    try:
        for backend in args.backends:
            url = None
            if backend == "redis":
                (work / "redis").mkdir()
                redis_process, url = _start_redis(work / "redis")
                if redis_process is None:
                    results["redis"] = "skipped: redis-server is not installed"
                    continue
                url = f"{url}/1"
            data_dir = work / backend / "data"
            write_offline(data_dir, args.customers, args.snapshots)
            raw = _settings_raw(data_dir, backend, url, sqlite_layout=args.sqlite_layout)
            (work / backend / "params.yaml").write_text(yaml.safe_dump(raw))
            results[backend] = bench_backend(backend, data_dir, url, args.customers, args.requests,
                                             args.sizes, args.check, args.sqlite_layout)
    finally:
        _stop_redis(redis_process)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
