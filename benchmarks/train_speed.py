"""Training-path speed and quality on one accelerator vs another, same data, same process.

    python benchmarks/train_speed.py --training-set TS.parquet --accelerators cpu gpu

TS.parquet is a Feast training set (features + labels per customer and snapshot), e.g. written by
`python benchmarks/train_speed.py --export TS.parquet` inside a data dir that `custintel retrain`
filled. For each accelerator it runs the same Optuna study (TPE + median pruning) and the refit
of the best trial, and prints wall times, trials/minute, seconds per epoch and holdout metrics.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from custintel.config import load_settings
from custintel.features.schema import CHURN_LABEL, FEATURE_NAMES, VALUE_LABEL


def _run(training_set: pd.DataFrame, settings, accelerator: str, trials: int) -> dict:
    from training.datamodule import time_split
    from training.fit import refit
    from training.metrics import holdout_metrics
    from training.tune import run_study

    train_cfg = settings.train.model_copy(update={
        "accelerator": accelerator,
        "tuning": settings.train.tuning.model_copy(update={"n_trials": trials})})
    settings = settings.model_copy(update={"train": train_cfg})
    split = time_split(training_set, settings.features.horizon_days)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study = run_study(split.train, split.val, FEATURE_NAMES, settings, f"sqlite:///{tmp}/o.db", "bench")
        study_s = time.perf_counter() - t0
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    best = study.best_trial
    epochs = int(best.user_attrs.get("epochs", settings.train.max_epochs))
    t0 = time.perf_counter()
    predictor = refit(pd.concat([split.train, split.val], ignore_index=True), FEATURE_NAMES, best.params,
                      epochs, settings)
    refit_s = time.perf_counter() - t0
    churn, spend = predictor.predict_arrays(split.holdout)
    return {
        "accelerator": accelerator, "trials": len(study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "study_s": round(study_s, 1), "trials_per_min": round(len(study.trials) / study_s * 60, 2),
        "epochs_in_study": epochs_run, "s_per_epoch_in_study": round(study_s / max(epochs_run, 1), 2),
        "refit_epochs": epochs, "refit_s": round(refit_s, 1),
        "train_rows": len(split.train), "holdout": holdout_metrics(
            split.holdout[CHURN_LABEL], split.holdout[VALUE_LABEL], churn, spend),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training-set", type=Path)
    parser.add_argument("--export", type=Path, help="write the Feast training set of the data dir here")
    parser.add_argument("--accelerators", nargs="+", default=["cpu"])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    settings = load_settings(args.params)
    if args.export:
        from custintel.runtime import configure
        from custintel.steps.train import load_training_set

        configure(settings)
        load_training_set(settings).to_parquet(args.export, index=False)
        return
    training_set = pd.read_parquet(args.training_set)
    for accelerator in args.accelerators:
        print(json.dumps(_run(training_set, settings, accelerator, args.trials)), flush=True)


if __name__ == "__main__":
    main()
