"""The multi-task model alone, re-tuned and refitted per seed on the split a run saved
(train/val/holdout.parquet in its run directory): no Feast load, no baselines, so a training change
can be compared over seeds at a fraction of seed_spread.py's cost. The baselines do not depend on
the model, so seed_spread.py's figures for them on the same run's split still apply.

    PYTHONPATH=. python benchmarks/model_on_split.py data/runs/seed-spread-1 --seeds 1 2 3

Prints one JSON line per seed and the mean ± std of the holdout metrics.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

METRICS = ("churn_auc", "churn_pr_auc", "churn_brier", "value_mae", "value_spearman", "value_gini",
           "value_top10_capture")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path,
                        help="a run directory with train/val/holdout.parquet and model/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    import pandas as pd

    from custintel.config import load_settings
    from custintel.features.schema import CHURN_LABEL, VALUE_LABEL
    from training.fit import refit
    from training.metrics import holdout_metrics
    from training.tune import run_study

    train, val, holdout = (pd.read_parquet(args.run_dir / f"{name}.parquet")
                           for name in ("train", "val", "holdout"))
    names = json.loads((args.run_dir / "model" / "model.json").read_text())["scaler"]["feature_names"]
    base = load_settings(args.params)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            start = time.perf_counter()
            settings = base.model_copy(update={"base": base.base.model_copy(update={"seed": seed})})
            study = run_study(train, val, names, settings, f"sqlite:///{scratch}/optuna.db", f"seed-{seed}")
            epochs = int(study.best_trial.user_attrs.get("epochs", settings.train.max_epochs))
            predictor = refit(pd.concat([train, val], ignore_index=True), names, study.best_params, epochs,
                              settings)
            m = holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL],
                                *predictor.predict_arrays(holdout))
            print(json.dumps({"seed": seed, **{k: round(m[k], 4) for k in METRICS}, "epochs": epochs,
                              "seconds": round(time.perf_counter() - start)}), flush=True)
            for k in METRICS:
                results.setdefault(k, []).append(m[k])
    print(f"\n{len(args.seeds)} seeds {args.seeds} on {args.run_dir}: mean ± std")
    for k, v in results.items():
        print(f"{k}: {statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}")


if __name__ == "__main__":
    main()
