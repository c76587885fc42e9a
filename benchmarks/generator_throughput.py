"""Generator and validation throughput: customers/s and rows/s (every generated table but the
customers: products, orders, order lines, events, reviews) generating and writing parquet, rows/s
validating them (schema checks + quarantine), and peak memory, for N customers; medians of
several runs. `legacy_rows_per_s` counts orders + events + reviews only, as before the products
and order-lines tables, to compare with older figures.

    PYTHONPATH=. python benchmarks/generator_throughput.py --customers 100000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from custintel.config import load_settings, utc_datetime
from custintel.data.generator import TABLES, generate_chunks, write_tables
from custintel.data.validation import validate_raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    cfg = load_settings(args.params).data.model_copy(update={"n_customers": args.customers})
    seconds, validate_s, counts = [], [], {}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            counts = write_tables(generate_chunks(cfg, seed=run), Path(tmp) / "raw")
            seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            validate_raw(Path(tmp) / "raw", Path(tmp) / "clean", Path(tmp) / "q", utc_datetime(cfg.end_date))
            validate_s.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    rows = sum(counts[name] for name in TABLES if name != "customers")
    legacy_rows = counts["orders"] + counts["events"] + counts["reviews"]
    validated_rows = sum(counts[name] for name in TABLES)
    print(json.dumps({
        "customers": args.customers, "runs": args.runs, "median_s": round(median, 2),
        "customers_per_s": round(args.customers / median), "events_per_s": round(counts["events"] / median),
        "rows_per_s": round(rows / median), "legacy_rows_per_s": round(legacy_rows / median), "rows": counts,
        "validate_median_s": round(statistics.median(validate_s), 2),
        "validated_rows_per_s": round(validated_rows / statistics.median(validate_s)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=2))


if __name__ == "__main__":
    main()
