"""The drift monitor on the generator's drift scenarios, and its false alarms on no-drift data.

    PYTHONPATH=. python benchmarks/drift_scenarios.py --customers 20000 --no-drift-runs 5

Reference: a no-drift world (seed 1). Each scenario world (its own seed, scenario from --start on)
and each no-drift world (seeds 2, 3, ...) is compared with it at the end of history with the
monitor's methods and the policy in params.yaml (custintel.drift_check). Prints one line per world
and the false-alarm count (no-drift runs whose action is not "none") with the largest no-drift
statistic / threshold of any feature (1 = flagged) and each test's largest noise floor.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from custintel.config import settings_from_dict
from custintel.drift_check import verify

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["price_inflation", "new_customer_surge", "churn_wave", "category_shift", "broken_feed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--no-drift-runs", type=int, default=5)
    parser.add_argument("--start", default="2025-10-01", help="scenario start (end of history: 2025-12-31)")
    parser.add_argument("--json", type=Path, help="also write the full result here")
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["n_customers"] = args.customers
    settings = settings_from_dict(raw)
    start = time.perf_counter()
    result = verify(settings, SCENARIOS, args.no_drift_runs, args.start)
    print(f"{args.customers} customers, sample_size {settings.drift.sample_size}, "
          f"scenario start {args.start}, "
          f"{time.perf_counter() - start:.0f} s")
    rows = list(result["scenarios"].items())
    rows += [(f"none #{i + 1}", r) for i, r in enumerate(result["no_drift"])]
    for name, r in rows:
        found = f"{len(r['expected_found'])}/{len(r['expected'])} expected" if r["expected"] else "-"
        print(f"{name:20s} {r['status']:9s} {r['action']:8s} share {r['drifted_share']:.2f}  {found:13s} "
              f"drifted: {', '.join(r['drifted'][:8]) or '-'}"
              + (f"  quality: {', '.join(r['quality'][:4])}" if r["quality"] else "")
              + f"  (largest statistic/threshold {r['max_severity']:.2f}; noise floors "
              + ", ".join(f"{m} {v:.4f}" for m, v in r["max_noise"].items()) + ")")
    quiet = result["no_drift"]
    print(f"false alarms: {result['false_alarms']} of {len(quiet)} no-drift runs; largest statistic/"
          f"threshold of any feature in them: {max(r['max_severity'] for r in quiet):.2f}; largest noise "
          "floors: " + ", ".join(f"{m} {max(r['max_noise'][m] for r in quiet):.4f}"
                                 for m in quiet[0]["max_noise"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
