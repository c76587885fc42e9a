"""Materialization into the online store: stock `FeatureStore.materialize` vs custintel's fast path
(custintel.materialization), into SQLite and into Redis: seconds, entities/s, peak RSS (each run in
its own child process), speed-up, and a check that both stores serve identical values.

Input: a synthetic offline parquet with the columns of the current feature groups
(custintel.features.schema) for N customers x S snapshots, written in the offline layout. The window
is the one `custintel materialize` uses (one TTL back from the newest snapshot). Stock runs on
--stock-customers (default: all); when stock takes longer than --stock-timeout seconds it is
stopped and rerun on 20,000 customers, and the speed-up is the ratio of entities/s (said in the
output). Redis runs use a throwaway redis-server on a free port (skipped when none is installed).

Stock runs with Feast's defaults (`sqlite_layout: feast`, `sqlite_sync: full`); the fast path with
--sqlite-layout (default compact, custintel's default) and --sqlite-sync.

SQLite floor (`sqlite.floor`): SQLite alone writing the rows the fast path stored, into a fresh
database with the fast path's schema and page size (table and index definitions copied from its
database): per table one `INSERT INTO t (columns) SELECT columns FROM src.t WHERE true` in one
transaction (the WHERE keeps SQLite from copying the B-tree pages as they are), with no Python, no
parsing, no serialisation. `stock_over_floor` (stock's seconds per customer over the floor's) is the
largest speed-up over stock any writer into that table layout could reach on this machine then
(the fast path can beat it a little: into empty tables it copies about half the views by SQLite's
transfer optimisation, custintel.sqlite_staging, which the floor's `WHERE true` turns off).

Redis floor (`redis.floor`): redis-server alone applying, into an empty database, one HSET per hash
and feature view holding what the fast path stored, built beforehand and sent at once on one
connection; `stock_over_floor` likewise. It is the floor of any HSET writer: the fast path into an
empty database sends one RESTORE per hash instead, which costs the server about a sixth of that
(benchmarks/redis_restore.py), so it can take less than this floor.

    PYTHONPATH=. python benchmarks/materialize.py --customers 100000 --snapshots 12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.peak_memory import peak_rss_mb  # noqa: E402

FALLBACK_STOCK_CUSTOMERS = 20_000


def _settings_raw(data_dir: Path, backend: str, redis_url: str | None,
                  sqlite_sync: str = "full", sqlite_layout: str = "compact") -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["paths"]["data_dir"] = str(data_dir)
    raw["feature_store"] = {"online_store": backend, "redis_url": redis_url, "sqlite_sync": sqlite_sync,
                            "sqlite_layout": sqlite_layout}
    return raw


def write_offline(data_dir: Path, customers: int, snapshots: int, seed: int = 0) -> int:
    """Synthetic offline features: every customer at each of the last `snapshots` snapshots."""
    from custintel.config import settings_from_dict
    from custintel.features.schema import ENTITY_KEY, GROUPS, TIMESTAMP
    from custintel.paths import DataPaths

    settings = settings_from_dict(_settings_raw(data_dir, "sqlite", None))
    stamps = pd.DatetimeIndex(settings.snapshot_dates()[-snapshots:])
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({ENTITY_KEY: np.tile(np.arange(customers, dtype="int64"), len(stamps)),
                          TIMESTAMP: np.repeat(stamps, customers)})
    for group in GROUPS:
        for name in group.features:
            values = rng.gamma(2.0, 10.0, size=len(frame)).round(4)
            values[rng.random(len(frame)) < 0.02] = np.nan
            frame[name] = values
    paths = DataPaths(data_dir)
    paths.offline.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.features_file, index=False, row_group_size=200_000)
    (paths.offline / "features.json").write_text(json.dumps({"feature_groups": [g.name for g in GROUPS]}))
    return len(frame)



def child(params_file: Path, path: str) -> None:
    """One materialization in this process; prints seconds and memory as JSON."""
    from datetime import datetime

    from custintel import feature_store
    from custintel.config import load_settings

    settings = load_settings(params_file)
    store = feature_store.open_store(settings)
    feature_store.apply_definitions(store, settings)
    before = peak_rss_mb()
    start = time.perf_counter()
    summary = feature_store.materialize_latest(store, settings) if path == "fast" else None
    if path == "stock":
        end = feature_store.materialization_end(settings)
        from datetime import timedelta

        begin = end - timedelta(seconds=1) - timedelta(days=settings.features.horizon_days)
        store.materialize(start_date=begin, end_date=end)
        summary = {"materialized_from": begin.isoformat(), "materialized_until": end.isoformat()}
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before,
                      "window": [summary["materialized_from"], summary["materialized_until"]],
                      "finished": datetime.now().isoformat()}))


def _run_child(params_file: Path, path: str, timeout: float | None) -> dict | None:
    os.sync()  # the input files just written are on disk first: no run pays for flushing them
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, __file__, "--child", str(params_file), "--path", path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None
    if process.returncode:
        raise RuntimeError(f"{path} materialization failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _start_redis(workdir: Path):
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    import redis

    from custintel.server import free_port

    port = free_port()
    process = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                                "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(400):
        try:
            client.ping()
            return process, f"redis://127.0.0.1:{port}"
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def _stop_redis(process) -> None:
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


def sqlite_floor(source_db: Path, target_db: Path) -> dict:
    """Seconds (wall and this thread's CPU) for SQLite alone to insert every row of `source_db`'s
    tables into a fresh `target_db` with the same schema, one transaction per table."""
    import sqlite3

    conn = sqlite3.connect(target_db)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (f"{source_db.resolve().as_uri()}?mode=ro",))
        conn.execute(f"PRAGMA main.page_size = {int(conn.execute('PRAGMA src.page_size').fetchone()[0])}")
        schema = conn.execute("SELECT type, name, sql FROM src.sqlite_master WHERE sql IS NOT NULL "
                              "ORDER BY type = 'index', rowid").fetchall()
        for _, _, sql in schema:
            conn.execute(sql)
        conn.commit()
        tables = [name for kind, name, _ in schema if kind == "table"]
        rows, start, cpu = 0, time.perf_counter(), time.thread_time()
        for name in tables:
            quoted = '"' + name.replace('"', '""') + '"'
            columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA src.table_info({quoted})"))
            with conn:
                rows += conn.execute(f"INSERT INTO main.{quoted} ({columns}) SELECT {columns} "
                                     f"FROM src.{quoted} WHERE true").rowcount
        return {"seconds": time.perf_counter() - start, "cpu_seconds": time.thread_time() - cpu,
                "rows": rows, "tables": len(tables)}
    finally:
        conn.close()


def redis_floor(fast_params: Path, target_url: str) -> dict:
    """Seconds for redis-server alone to apply the fast path's writes into the empty database of
    `target_url`: per hash and feature view one HSET of the view's `_ts` field and feature fields
    holding what the fast path stored, all built beforehand, sent at once on one connection, every
    reply read and checked. No client work overlaps it: it is the server's share of any writer of
    Feast's Redis layout on this machine."""
    import socket
    from urllib.parse import urlparse

    import redis
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import _versioned_fv_name

    from custintel import feature_store
    from custintel.config import load_settings
    from custintel.redis_payloads import resp_bulk

    settings = load_settings(fast_params)
    store = feature_store.open_store(settings)
    groups = []
    for view in store.list_feature_views():
        if view.online:
            name = _versioned_fv_name(view, store.config)
            groups.append([f"_ts:{name}".encode(), *(_mmh3(f"{name}:{f.name}") for f in view.features)])
    source = redis.Redis.from_url(settings.feature_store.redis_url)
    keys = sorted(source.scan_iter(count=10_000))
    commands: list[bytes] = []
    for start in range(0, len(keys), 10_000):
        batch = keys[start:start + 10_000]
        with source.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hgetall(key)
            hashes = pipe.execute()
        for key, fields in zip(batch, hashes, strict=True):
            for group in groups:
                present = [(field, fields[field]) for field in group if field in fields]
                if present:
                    commands.append(b"*%d\r\n$4\r\nHSET\r\n%s%s" % (
                        2 + 2 * len(present), resp_bulk(key),
                        b"".join(resp_bulk(f) + resp_bulk(v) for f, v in present)))
    payload = b"".join(commands)
    target = urlparse(target_url)
    sock = socket.create_connection((target.hostname, target.port))
    try:
        sock.sendall(b"*2\r\n$6\r\nSELECT\r\n" + resp_bulk(target.path.strip("/").encode()))
        if not sock.recv(64).startswith(b"+OK"):
            raise RuntimeError("SELECT failed")
        received, lines = [], 0
        start = time.perf_counter()
        sock.sendall(payload)
        while lines < len(commands):
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("redis-server closed the connection")
            received.append(data)
            lines += data.count(b"\n")
        seconds = time.perf_counter() - start
    finally:
        sock.close()
    if any(not line.startswith(b":") for line in b"".join(received).split(b"\r\n")[:-1]):
        raise RuntimeError("redis-server refused a write of the floor")
    return {"seconds": seconds, "hashes": len(keys), "hset_commands": len(commands),
            "megabytes_sent": round(len(payload) / 1e6, 1)}


def _same_values(stock_params: Path, fast_params: Path, ids: list[int]) -> bool:
    from custintel import feature_store
    from custintel.config import load_settings
    from custintel.features.schema import ENTITY_KEY

    responses = []
    for params in (stock_params, fast_params):
        store = feature_store.open_store(load_settings(params))
        responses.append(store.get_online_features(
            features=feature_store.feature_service(store), entity_rows=[{ENTITY_KEY: i} for i in ids]
        ).to_dict(include_event_timestamps=True))
    return responses[0] == responses[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=12)
    parser.add_argument("--stock-customers", type=int, default=None, help="default: --customers")
    parser.add_argument("--stock-timeout", type=float, default=300.0)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    parser.add_argument("--sqlite-sync", choices=["full", "off"], default="full",
                        help="feature_store.sqlite_sync of the fast path (stock Feast writes with full)")
    parser.add_argument("--sqlite-layout", choices=["compact", "feast"], default="compact",
                        help="feature_store.sqlite_layout of the fast path (stock runs in Feast's layout)")
    parser.add_argument("--sample", type=int, default=2000, help="customers whose values are compared")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=["stock", "fast"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path)
        return

    stock_customers = args.stock_customers or args.customers
    work = Path(tempfile.mkdtemp(prefix="custintel-materialize-bench-"))
    redis_process = None
    results: dict = {"customers": args.customers, "snapshots": args.snapshots, "cpu_count": os.cpu_count()}
    try:
        offline = {}

        def offline_for(customers: int) -> Path:
            """The full offline parquet, or its first `customers` customers (same values)."""
            if args.customers not in offline:
                source = work / f"offline-{args.customers}"
                rows = write_offline(source, args.customers, args.snapshots)
                results[f"offline_rows_{args.customers}"] = rows
                offline[args.customers] = source
            if customers not in offline:
                import pyarrow.parquet as pq

                from custintel.features.schema import ENTITY_KEY

                full = offline[args.customers] / "offline"
                subset = work / f"offline-{customers}" / "offline"
                subset.mkdir(parents=True)
                table = pq.read_table(full / "customer_features.parquet",
                                      filters=[(ENTITY_KEY, "<", customers)])
                pq.write_table(table, subset / "customer_features.parquet")
                shutil.copy(full / "features.json", subset / "features.json")
                results[f"offline_rows_{customers}"] = table.num_rows
                offline[customers] = subset.parent
            return offline[customers]

        runs = iter(range(1000))

        def params_for(name: str, customers: int, backend: str, url: str | None, stock: bool = False) -> Path:
            name = f"{name}-{next(runs)}"
            data_dir = work / name / "data"
            shutil.copytree(offline_for(customers) / "offline", data_dir / "offline")
            raw = (_settings_raw(data_dir, backend, url, "full", "feast") if stock  # Feast's defaults
                   else _settings_raw(data_dir, backend, url, args.sqlite_sync, args.sqlite_layout))
            params = work / name / "params.yaml"
            params.write_text(yaml.safe_dump(raw))
            return params

        redis_db = iter(range(1, 16))
        for backend in args.backends:
            url = None
            if backend == "redis":
                if redis_process is None:
                    (work / "redis").mkdir()
                    redis_process, base = _start_redis(work / "redis")
                    if redis_process is None:
                        results["redis"] = "skipped: redis-server is not installed"
                        continue
                url = base
            fast_url = f"{url}/{next(redis_db)}" if url else None
            fast_params = params_for(f"{backend}-fast", args.customers, backend, fast_url)
            fast = _run_child(fast_params, "fast", None)
            fast["customers"] = args.customers
            n_stock = stock_customers
            stock_url = f"{url}/{next(redis_db)}" if url else None
            stock_params = params_for(f"{backend}-stock-{n_stock}", n_stock, backend, stock_url, stock=True)
            stock = _run_child(stock_params, "stock", args.stock_timeout)
            note = None
            if stock is None:
                note = (f"stock took over {args.stock_timeout:.0f} s on {n_stock} customers; stopped and "
                        f"rerun on {FALLBACK_STOCK_CUSTOMERS}: the speed-up is the ratio of entities/s")
                stock_customers = n_stock = min(FALLBACK_STOCK_CUSTOMERS, args.customers)  # other backend too
                stock_url = f"{url}/{next(redis_db)}" if url else None
                stock_params = params_for(f"{backend}-stock-{n_stock}", n_stock, backend, stock_url,
                                          stock=True)
                stock = _run_child(stock_params, "stock", None)
            stock["customers"] = n_stock
            for run in (fast, stock):
                run["entities_per_s"] = run["customers"] / run["seconds"]
            rng = np.random.default_rng(1)
            ids = sorted(rng.choice(min(n_stock, args.customers), size=min(args.sample, n_stock),
                                    replace=False).tolist())
            if backend == "sqlite":
                floor = sqlite_floor(fast_params.parent / "data" / "feast" / "online_store.db",
                                     work / f"floor-{next(runs)}.db")
            else:
                floor = redis_floor(fast_params, f"{url}/{next(redis_db)}")
            floor["customers"] = args.customers
            floor["entities_per_s"] = args.customers / floor["seconds"]
            floor["stock_over_floor"] = floor["entities_per_s"] / stock["entities_per_s"]
            floor["fast_over_floor_seconds"] = fast["seconds"] / floor["seconds"]
            results[backend] = {
                "fast": fast, "stock": stock, "note": note, "floor": floor,
                "speedup_entities_per_s": fast["entities_per_s"] / stock["entities_per_s"],
                "peak_rss_ratio": stock["peak_rss_mb"] / fast["peak_rss_mb"],
                "identical_values_on_sample": _same_values(stock_params, fast_params, ids),
                "sample": len(ids),
            }
            print(json.dumps({backend: results[backend]}, indent=2), flush=True)
    finally:
        _stop_redis(redis_process)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
