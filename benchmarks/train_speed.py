"""Tuning speed and quality per accelerator and per pruner, same data, same process.

    python benchmarks/train_speed.py --data-dir data --trials 8 --pruners median none
    python benchmarks/train_speed.py --training-set TS.parquet --accelerators cpu gpu
    python benchmarks/train_speed.py --training-set TS.parquet --accelerators gpu cpu \
        --epoch-batch-sizes 512 2048 8192

--data-dir joins the offline features and labels that `custintel retrain` wrote there (the rows
Feast's point-in-time join returns); TS.parquet is a Feast training set written by
`--export TS.parquet`. For each accelerator and pruner it runs the same Optuna study (TPE, same
seed) and the refit of the best trial, and prints wall times, trials/minute, epochs run, seconds
per epoch and holdout metrics; with both pruners, the time the median pruner saved. With
--epoch-batch-sizes it instead times the refit path alone (a fixed 3 x 128 net, 3 epochs after a
1-epoch warm-up on 5,000 rows) per accelerator and batch size: where a GPU starts to pay.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from custintel.config import load_settings
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, FEATURE_NAMES, TIMESTAMP, VALUE_LABEL


def _run(training_set: pd.DataFrame, settings, accelerator: str, trials: int, pruner: str) -> dict:
    from training.datamodule import time_split
    from training.fit import refit
    from training.metrics import holdout_metrics
    from training.tune import run_study

    train_cfg = settings.train.model_copy(update={
        "accelerator": accelerator,
        "tuning": settings.train.tuning.model_copy(update={"n_trials": trials, "pruner": pruner})})
    names = [name for name in FEATURE_NAMES if name in training_set.columns]
    settings = settings.model_copy(update={"train": train_cfg})
    split = time_split(training_set, settings.features.horizon_days)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study = run_study(split.train, split.val, names, settings, f"sqlite:///{tmp}/o.db", "bench")
        study_s = time.perf_counter() - t0
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    best = study.best_trial
    epochs = int(best.user_attrs.get("epochs", settings.train.max_epochs))
    t0 = time.perf_counter()
    predictor = refit(pd.concat([split.train, split.val], ignore_index=True), names, best.params,
                      epochs, settings)
    refit_s = time.perf_counter() - t0
    churn, spend = predictor.predict_arrays(split.holdout)
    return {
        "accelerator": accelerator, "pruner": pruner, "trials": len(study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "study_s": round(study_s, 1), "trials_per_min": round(len(study.trials) / study_s * 60, 2),
        "epochs_in_study": epochs_run, "s_per_epoch_in_study": round(study_s / max(epochs_run, 1), 2),
        "refit_epochs": epochs, "refit_s": round(refit_s, 1),
        "best_val_score": round(study.best_value, 4), "train_rows": len(split.train),
        "holdout": {k: round(v, 4) for k, v in holdout_metrics(
            split.holdout[CHURN_LABEL], split.holdout[VALUE_LABEL], churn, spend).items()
            if k in ("churn_auc", "value_mae", "value_spearman")},
    }


def _epoch_seconds(training_set: pd.DataFrame, settings, accelerator: str, batch_size: int) -> dict:
    from training.datamodule import time_split
    from training.fit import refit

    names = [name for name in FEATURE_NAMES if name in training_set.columns]
    split = time_split(training_set, settings.features.horizon_days)
    train = pd.concat([split.train, split.val], ignore_index=True)
    train_cfg = settings.train.model_copy(update={"accelerator": accelerator})
    settings = settings.model_copy(update={"train": train_cfg})
    params = {"hidden_dim": 128, "n_layers": 3, "dropout": 0.1, "lr": 3e-3, "weight_decay": 1e-5,
              "value_loss_weight": 1.0, "batch_size": batch_size}
    refit(train.iloc[:5000], names, params, 1, settings)  # warm-up (CUDA context, kernels)
    started = time.perf_counter()
    refit(train, names, params, 3, settings)
    return {"accelerator": accelerator, "batch_size": batch_size, "rows": len(train),
            "s_per_epoch": round((time.perf_counter() - started) / 3, 2)}


def _from_data_dir(data_dir: Path) -> pd.DataFrame:
    keys = [ENTITY_KEY, TIMESTAMP]
    labels = pd.read_parquet(data_dir / "offline" / "customer_labels.parquet")
    return labels.merge(pd.read_parquet(data_dir / "offline" / "customer_features.parquet"), on=keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training-set", type=Path)
    parser.add_argument("--data-dir", type=Path, help="a data dir filled by `custintel retrain`")
    parser.add_argument("--pruners", nargs="+", default=["median"], choices=["median", "none"])
    parser.add_argument("--export", type=Path, help="write the Feast training set of the data dir here")
    parser.add_argument("--accelerators", nargs="+", default=["cpu"])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epoch-batch-sizes", type=int, nargs="+",
                        help="time refit epochs per accelerator at these batch sizes (no study)")
    args = parser.parse_args()
    settings = load_settings(args.params)
    if args.export:
        from custintel.runtime import configure
        from custintel.steps.train import load_training_set

        configure(settings)
        load_training_set(settings).to_parquet(args.export, index=False)
        return
    training_set = _from_data_dir(args.data_dir) if args.data_dir else pd.read_parquet(args.training_set)
    if args.epoch_batch_sizes:
        for accelerator in args.accelerators:
            for batch_size in args.epoch_batch_sizes:
                print(json.dumps(_epoch_seconds(training_set, settings, accelerator, batch_size)), flush=True)
        return
    for accelerator in args.accelerators:
        results = {}
        for pruner in args.pruners:
            results[pruner] = _run(training_set, settings, accelerator, args.trials, pruner)
            print(json.dumps(results[pruner]), flush=True)
        if {"median", "none"} <= set(results):
            with_, without = results["median"], results["none"]
            print(json.dumps({"accelerator": accelerator, "pruning_time_saved": round(
                1 - with_["study_s"] / without["study_s"], 3), "epochs_saved": round(
                1 - with_["epochs_in_study"] / max(without["epochs_in_study"], 1), 3),
                "best_val_score_with_minus_without": round(
                    with_["best_val_score"] - without["best_val_score"], 4)}), flush=True)


if __name__ == "__main__":
    main()
