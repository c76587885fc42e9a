"""Feature build throughput: the point-in-time features (custintel.features.point_in_time, reported
under the key `duckdb`, its former engine) against a straightforward pandas implementation of the
same features (filter every table to each snapshot, groupby customer), on generated data (raw
tables used as clean), for monthly snapshots ending at the end of history.

Each build runs in its own child process (`--worker`), timed there from reading the parquet
tables to the finished feature frame (writing it out is not timed); its peak RSS is the child's
VmHWM from /proc/self/status (ru_maxrss where there is none), which includes the interpreter and
its imports (reported separately as `rss_before_mb`). DuckDB runs `--runs` times (median reported), pandas
once, on `--pandas-customers` customers (all by default) with rows/s scaled from that subset.
The two outputs are compared on every row and column the pandas run covers.

    PYTHONPATH=. python benchmarks/feature_build.py --customers 100000 --snapshots 12 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.features.schema import (
    BASKET,
    ENGAGEMENT,
    ENTITY_KEY,
    PURCHASE,
    TIMESTAMP,
    feature_names,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.peak_memory import peak_rss_mb  # noqa: E402

# The text group (sentence embeddings) has its own benchmark: benchmarks/text_features.py.
GROUPS = [PURCHASE, BASKET, ENGAGEMENT]
DAY = pd.Timedelta(days=1)



# ---------------------------------------------------------------- pandas baseline, same features
def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, 0 where den is 0."""
    return (num / den.where(den > 0)).fillna(0.0)


def _purchase(orders: pd.DataFrame, base: pd.DataFrame, s: pd.Timestamp) -> pd.DataFrame:
    o = orders[orders["order_ts"] < s]
    g = o.groupby("customer_id")
    out = pd.DataFrame({"frequency": g.size(), "monetary_mean": g["amount"].mean(),
                        "order_value_std": g["amount"].std(ddof=0), "order_value_max": g["amount"].max(),
                        "first_ts": g["order_ts"].min(), "last_ts": g["order_ts"].max(),
                        "interpurchase_mean_days": g["gap"].mean(),
                        "interpurchase_std_days": g["gap"].std(ddof=0)})
    for days in (30, 90, 365):
        w = o[o["order_ts"] >= s - days * DAY].groupby("customer_id")["amount"]
        out[f"spend_{days}d"], out[f"orders_{days}d"] = w.sum(), w.size()
    prev = o[(o["order_ts"] >= s - 60 * DAY) & (o["order_ts"] < s - 30 * DAY)]
    prev = prev.groupby("customer_id")["amount"]
    out["spend_prev"], out["orders_prev"] = prev.sum(), prev.size()
    f = base.join(out)
    since_signup = _days(s - f["signup_ts"])
    f["recency_days"] = _days(s - f["last_ts"]).fillna(since_signup)
    f["tenure_days"] = since_signup
    f["days_since_first_order"] = _days(s - f["first_ts"]).fillna(since_signup)
    f["interpurchase_mean_days"] = f["interpurchase_mean_days"].fillna(f["days_since_first_order"])
    f = f.fillna({c: 0.0 for c in f.columns if c not in ("signup_ts", "first_ts", "last_ts")})
    f["orders_trend_30d"] = f["orders_30d"] - f["orders_prev"]
    f["spend_trend_30d"] = f["spend_30d"] - f["spend_prev"]
    return f


def _basket(lines: pd.DataFrame, base: pd.DataFrame, s: pd.Timestamp) -> pd.DataFrame:
    bought = lines[lines["order_ts"] < s]
    by_cat = bought.groupby(["customer_id", "category"], observed=True)["gross"].sum()
    total = by_cat.groupby(level=0).sum()
    share = by_cat / total.reindex(by_cat.index, level=0)
    g = bought.groupby("customer_id")
    out = pd.DataFrame({"n_lines": g.size(), "gross": g["gross"].sum(), "disc": g["disc"].sum(),
                        "returned": (bought["return_ts"] < s).groupby(bought["customer_id"]).sum(),
                        "category_entropy": (-share * np.log(share)).groupby(level=0).sum(),
                        "top_category_share": share.groupby(level=0).max()})
    f = base[[]].join(out).fillna(0.0)
    f["discount_share"] = _ratio(f["disc"], f["gross"])
    f["return_rate"] = _ratio(f["returned"], f["n_lines"])
    return f


def _engagement(events: pd.DataFrame, base: pd.DataFrame, s: pd.Timestamp) -> pd.DataFrame:
    e = events[(events["event_ts"] < s) & (events["event_ts"] >= s - 90 * DAY)]
    out = {}
    for days in (7, 30):
        w = e[e["event_ts"] >= s - days * DAY]
        out[f"sessions_{days}d"] = w.groupby("customer_id")["session_id"].nunique()
        counts = w.groupby(["customer_id", "event_type"], observed=False).size().unstack(fill_value=0)
        for kind, name in (("view", "views"), ("search", "searches"), ("add_to_cart", "cart_adds"),
                           ("checkout", "checkouts")):
            out[f"{name}_{days}d"] = counts[kind] if kind in counts else pd.Series(dtype=float)
    prev = e[(e["event_ts"] >= s - 60 * DAY) & (e["event_ts"] < s - 30 * DAY)]
    out["sessions_prev"] = prev.groupby("customer_id")["session_id"].nunique()
    flags = e.assign(cart=e["event_type"] == "add_to_cart", checkout=e["event_type"] == "checkout")
    sess = flags.groupby(["customer_id", "session_id"])[["cart", "checkout"]].any()
    carted = sess[sess["cart"]]
    out["cart_sessions_90d"] = carted.groupby(level=0).size()
    out["abandoned"] = (~carted["checkout"]).groupby(level=0).sum()
    f = base[[]].join(pd.DataFrame(out)).fillna(0.0)
    f["cart_abandon_rate_90d"] = _ratio(f["abandoned"], f["cart_sessions_90d"])
    f["sessions_trend_30d"] = f["sessions_30d"] - f["sessions_prev"]
    return f


def pandas_features(raw: Path, snapshots: list[datetime], customer_limit: int | None) -> pd.DataFrame:
    def read(table: str, columns: list[str]) -> pd.DataFrame:
        frame = pd.read_parquet(raw / f"{table}.parquet", columns=columns)
        if customer_limit is not None and "customer_id" in frame:
            frame = frame[frame["customer_id"] <= customer_limit]
        return frame

    customers = read("customers", ["customer_id", "signup_ts"])
    orders = read("orders", ["order_id", "customer_id", "order_ts", "amount"])
    orders = orders.sort_values(["customer_id", "order_ts", "order_id"])
    orders["gap"] = _days(orders.groupby("customer_id")["order_ts"].diff())
    lines = pd.read_parquet(raw / "order_lines.parquet",
                            columns=["order_id", "product_id", "quantity", "unit_price", "discount",
                                     "return_ts"])
    lines = lines.merge(orders[["order_id", "customer_id", "order_ts"]], on="order_id").merge(
        pd.read_parquet(raw / "products.parquet", columns=["product_id", "category"]), on="product_id")
    lines["gross"] = lines["quantity"] * lines["unit_price"]
    lines["disc"] = lines["gross"] * lines["discount"]
    lines["return_ts"] = lines["return_ts"].where(lines["return_ts"].isna(),
                                                  np.maximum(lines["return_ts"], lines["order_ts"]))
    events = read("events", ["session_id", "customer_id", "event_ts", "event_type"])
    frames = []
    for snap in snapshots:
        s = pd.Timestamp(snap)
        base = customers[customers["signup_ts"] < s].set_index("customer_id").sort_index()
        parts = [_purchase(orders, base, s), _basket(lines, base, s), _engagement(events, base, s)]
        f = pd.concat([p[list(g.features)] for p, g in zip(parts, GROUPS, strict=True)], axis=1)
        frames.append(f.astype("float64").reset_index().assign(**{TIMESTAMP: s}))
    out = pd.concat(frames, ignore_index=True)
    return out[[ENTITY_KEY, TIMESTAMP, *feature_names(GROUPS)]]


# ---------------------------------------------------------------- runs
def worker(impl: str, raw: Path, out: Path, snapshots: list[datetime], customer_limit: int | None) -> None:
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    if impl == "duckdb":
        from custintel.features.point_in_time import compute_features

        frame = compute_features(raw, snapshots, GROUPS)
    else:
        frame = pandas_features(raw, snapshots, customer_limit)
    seconds = time.perf_counter() - start
    frame.to_parquet(out, index=False)
    print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_rss_mb": peak_rss_mb(),
                      "rss_before_mb": rss_before}))


def _child(impl: str, raw: Path, out: Path, snapshots: list[datetime], customer_limit: int | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--raw", str(raw), "--out", str(out),
           "--snapshot-list", ",".join(s.isoformat() for s in snapshots)]
    if customer_limit is not None:
        cmd += ["--limit", str(customer_limit)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _compare(duck: pd.DataFrame, pand: pd.DataFrame) -> dict:
    keys = [ENTITY_KEY, TIMESTAMP]
    merged = pand.merge(duck, on=keys, suffixes=("_pd", "_db"), how="left", indicator=True)
    assert (merged["_merge"] == "both").all(), "rows missing from the DuckDB output"
    worst, disagree = {}, []
    for name in feature_names(GROUPS):
        a, b = merged[f"{name}_pd"].to_numpy(), merged[f"{name}_db"].to_numpy()
        # atol 1e-4: DuckDB's standard deviations come from sums of squares (cancellation ~1e-6)
        if not np.allclose(a, b, rtol=1e-6, atol=1e-4):
            disagree.append(name)
        worst[name] = float(np.abs(a - b).max())
    return {"rows_compared": len(merged), "columns_compared": len(worst), "agree": not disagree,
            "disagreeing_columns": disagree, "max_abs_diff": max(worst.values()),
            "worst_column": max(worst, key=worst.get)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pandas-customers", type=int, default=None,
                        help="run the pandas baseline on customers 1..N only and scale its rows/s")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--worker", choices=["duckdb", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-list", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        snaps = [datetime.fromisoformat(s) for s in args.snapshot_list.split(",")]
        worker(args.worker, args.raw, args.out, snaps, args.limit)
        return

    from custintel.config import load_settings, utc_datetime
    from custintel.data.generator import generate_chunks, write_tables

    settings = load_settings(args.params)
    cfg = settings.data.model_copy(update={"n_customers": args.customers})
    end = utc_datetime(cfg.end_date)
    snapshots = [end - timedelta(days=30 * k) for k in reversed(range(args.snapshots))]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        start = time.perf_counter()
        counts = write_tables(generate_chunks(cfg, seed=0), raw)
        generate_s = time.perf_counter() - start
        duck_out, pandas_out = Path(tmp) / "duck.parquet", Path(tmp) / "pandas.parquet"
        duck_runs = [_child("duckdb", raw, duck_out, snapshots, None) for _ in range(args.runs)]
        pand = _child("pandas", raw, pandas_out, snapshots, args.pandas_customers)
        agreement = _compare(pd.read_parquet(duck_out), pd.read_parquet(pandas_out))
    duck_s = statistics.median(r["seconds"] for r in duck_runs)
    rows = duck_runs[0]["rows"]
    share = pand["rows"] / rows  # the pandas run's share of the feature rows
    pandas_rows_per_s = pand["rows"] / pand["seconds"]
    print(json.dumps({
        "customers": args.customers,
        "snapshots": [len(snapshots), snapshots[0].date().isoformat(), snapshots[-1].date().isoformat()],
        "input_rows": counts, "feature_rows": rows, "features": len(feature_names(GROUPS)),
        "generate_s": round(generate_s, 1),
        "duckdb": {"runs_s": [round(r["seconds"], 2) for r in duck_runs], "median_s": round(duck_s, 2),
                   "rows_per_s": round(rows / duck_s),
                   "peak_rss_mb": round(max(r["peak_rss_mb"] for r in duck_runs)),
                   "rss_before_mb": round(duck_runs[0]["rss_before_mb"])},
        "pandas": {"customers": args.pandas_customers or args.customers, "rows": pand["rows"],
                   "seconds": round(pand["seconds"], 2), "rows_per_s": round(pandas_rows_per_s),
                   "seconds_scaled_to_all": round(pand["seconds"] / share, 1),
                   "peak_rss_mb": round(pand["peak_rss_mb"]), "rss_before_mb": round(pand["rss_before_mb"])},
        "speedup": round((rows / duck_s) / pandas_rows_per_s, 1),
        "agreement": agreement,
    }, indent=2))


if __name__ == "__main__":
    main()
