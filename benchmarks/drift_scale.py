"""Cost of a monitoring run at scale, against a stock Evidently DataDriftPreset.

    PYTHONPATH=. python benchmarks/drift_scale.py                       # 1M x 50, stock at 50k for the ratio
    PYTHONPATH=. python benchmarks/drift_scale.py --rows 200000 --stock-rows 20000 --runs 3

Each measurement runs in a fresh process (imports included, so Evidently's import is paid every
time): synthetic reference and current frames of `rows` rows x `features` float64 columns (35
continuous: normal, gamma, lognormal; 15 discrete counts; 6 columns of the current shifted), then
either custintel.monitoring.run_monitoring (quality checks on every current row, tests on
drift.sample_size rows per side, Evidently HTML of the top drift.report_features features) or
Evidently's DataDriftPreset with its default tests on every row + save_html. Wall time covers the
run only (not making the data); peak RSS is the whole process, input frames included (their size is
printed). Medians of --runs runs; the machine is shared, so absolute times vary with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_frames(rows: int, features: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    frames = []
    for side in range(2):
        block = np.empty((features, rows))  # one contiguous array per column, as parquet reads give
        for j in range(features):
            kind = j % 10
            shift = 0.3 if side == 1 and j < 6 else 0.0  # current: the first 6 columns move
            if kind < 3:
                block[j] = rng.normal(shift, 1, rows)
            elif kind < 5:
                block[j] = rng.gamma(2, 1 + shift, rows)
            elif kind < 7:
                block[j] = rng.lognormal(3 + shift, 1, rows)
            else:
                block[j] = rng.poisson(1.5 + shift, rows)
        frames.append(pd.DataFrame(block.T, columns=names, copy=False))
    return frames[0], frames[1], names


def child(mode: str, rows: int, features: int, out: Path) -> dict:
    ref, cur, names = make_frames(rows, features, seed=0)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if mode == "custintel":
        from custintel.config import DriftSection
        from custintel.monitoring import MonitorInputs, run_monitoring

        cfg = DriftSection()
        summary = run_monitoring(MonitorInputs(ref, cur, names), cfg, 0, out)
        result = {"drifted": summary["drifted_features"], "status": summary["status"],
                  "sample": cfg.sample_size,
                  "max_noise": summary["sample"]["power"]["wasserstein"]["max_noise"]}
    else:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        snapshot.save_html(str(out / "stock.html"))
        result = {}
    seconds = time.perf_counter() - start
    return {"mode": mode, "rows": rows, "seconds": seconds, "data_mb": round(rss_data),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **result}


def measure(mode: str, rows: int, features: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--rows", str(rows),
                               "--features", str(features), "--out", tmp],
                              capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(mode: str, rows: int, features: int, runs: int) -> dict:
    results = [measure(mode, rows, features) for _ in range(runs)]
    for r in results:
        print(f"  {mode:9s} {rows:>9,d} rows: {r['seconds']:6.1f} s, peak RSS {r['peak_rss_mb']:6.0f} MB "
              f"(input frames ~{r['data_mb']:.0f} MB)", flush=True)
    out = dict(results[0])
    out["seconds"] = statistics.median(r["seconds"] for r in results)
    out["peak_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in results)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side of the custintel run")
    parser.add_argument("--stock-rows", type=int, default=50_000, 
                        help="rows per side of the stock/ratio runs")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.features, Path(args.out))))
        return
    print(f"{args.features} features; medians of {args.runs} runs; shared machine (load varies)")
    ours_small = median_of("custintel", args.stock_rows, args.features, args.runs)
    stock = median_of("stock", args.stock_rows, args.features, args.runs)
    ours = median_of("custintel", args.rows, args.features, args.runs)
    print(json.dumps({
        "custintel": {"rows": args.rows, "seconds": round(ours["seconds"], 1),
                      "peak_rss_mb": round(ours["peak_rss_mb"]), "input_mb": ours["data_mb"],
                      "sample_per_side": ours["sample"], "max_noise_wasserstein": round(ours["max_noise"], 4),
                      "drifted": ours["drifted"]},
        "at_stock_size": {"rows": args.stock_rows, "custintel_s": round(ours_small["seconds"], 1),
                          "stock_s": round(stock["seconds"], 1),
                          "custintel_peak_mb": round(ours_small["peak_rss_mb"]),
                          "stock_peak_mb": round(stock["peak_rss_mb"]),
                          "speedup": round(stock["seconds"] / ours_small["seconds"], 1)},
    }, indent=2))


if __name__ == "__main__":
    main()
