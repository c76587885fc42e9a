"""The multi-task model alone, re-tuned and refitted per seed on the split a run saved
(train/val/holdout.parquet in its run directory): no Feast load, no baselines, so a training change
can be compared over seeds at a fraction of seed_spread.py's cost. The baselines do not depend on
the model, so seed_spread.py's figures for them on the same run's split still apply.

    PYTHONPATH=. python benchmarks/model_on_split.py data/runs/seed-spread-1 --seeds 1 2 3
    # cheaper on big data: the run's tuned hyperparameters and epochs, refitted per seed (the spread
    # is then that of training alone, not of tuning), and LightGBM per seed on the same split
    PYTHONPATH=. python benchmarks/model_on_split.py data/runs/seed-spread-1 --seeds 2 3 \
        --reuse-tuning --lightgbm

Prints one JSON line per seed and model and the mean ± std of the holdout metrics.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.seed_table import SeedTable, rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path,
                        help="a run directory with train/val/holdout.parquet and model/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--reuse-tuning", action="store_true",
                        help="refit with the run's tuned hyperparameters and epochs (model/model.json) "
                             "instead of a study per seed")
    parser.add_argument("--lightgbm", action="store_true", help="also LightGBM per seed on the same split")
    args = parser.parse_args()

    import pandas as pd

    from custintel.config import load_settings
    from custintel.features.schema import CHURN_LABEL, VALUE_LABEL
    from training.baselines import lightgbm_baseline
    from training.fit import refit
    from training.metrics import holdout_metrics
    from training.tune import run_study

    train, val, holdout = (pd.read_parquet(args.run_dir / f"{name}.parquet")
                           for name in ("train", "val", "holdout"))
    saved = json.loads((args.run_dir / "model" / "model.json").read_text())
    names = saved["scaler"]["feature_names"]
    base = load_settings(args.params)
    results = SeedTable()

    def report(model: str, seed: int, metrics: dict, **extra) -> None:
        print(json.dumps({"model": model, "seed": seed, **rounded(metrics), **extra}), flush=True)
        results.add(model, metrics)

    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            start = time.perf_counter()
            settings = base.model_copy(update={"base": base.base.model_copy(update={"seed": seed})})
            if args.reuse_tuning:
                params, epochs = saved["params"], int(saved["epochs"])
            else:
                study = run_study(train, val, names, settings, f"sqlite:///{scratch}/optuna.db",
                                  f"seed-{seed}")
                params = study.best_params
                epochs = int(study.best_trial.user_attrs.get("epochs", settings.train.max_epochs))
            predictor = refit(pd.concat([train, val], ignore_index=True), names, params, epochs, settings)
            report("model", seed, holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL],
                                                  *predictor.predict_arrays(holdout)),
                   epochs=epochs, seconds=round(time.perf_counter() - start))
            if args.lightgbm:
                scores = lightgbm_baseline(train, val, holdout, names, seed)
                report("lightgbm", seed, holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL], *scores))
    print(f"\n{len(args.seeds)} seeds {args.seeds} on {args.run_dir}: mean ± std")
    print(results.markdown())


if __name__ == "__main__":
    main()
