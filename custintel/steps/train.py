"""Train: Feast training set -> time split -> Optuna study -> refit best on train+val -> save."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from custintel.config import Settings
from custintel.errors import UserError
from custintel.features.schema import feature_names
from custintel.paths import DataPaths
from custintel.runs import training_key, write_json

log = logging.getLogger(__name__)
DONE_FILE = "trained.json"


def load_training_set(settings: Settings) -> pd.DataFrame:
    """Labels (entity rows) joined point-in-time with the feature service through Feast."""
    from custintel import feature_store

    labels_file = DataPaths(settings.data_dir).labels_file
    if not labels_file.is_file():
        raise UserError(f"{labels_file} is missing: run `custintel features` (and `custintel feast-apply`) "
                        "before training.")
    labels = pd.read_parquet(labels_file)
    return feature_store.training_set(feature_store.open_store(settings), labels)


def train(settings: Settings, run_dir: Path, data_version: str,
          training_set: pd.DataFrame | None = None) -> dict:
    """`training_set`: the Feast training set when the caller already loaded it (several runs on one
    data version, e.g. benchmarks/seed_spread.py); loaded here otherwise."""
    import optuna

    from custintel.steps.features import built_groups
    from feature_repo.definitions import FEATURE_SERVICE
    from training.datamodule import time_split
    from training.fit import refit
    from training.trainer import resolve_accelerator
    from training.tune import run_study

    paths = DataPaths(settings.data_dir)
    names = feature_names(built_groups(settings))
    if training_set is None:
        training_set = load_training_set(settings)
    split = time_split(training_set, settings.features.horizon_days)
    write_json(run_dir / "split.json", split.describe())
    storage = settings.train.tuning.storage or f"sqlite:///{paths.optuna_db}"
    # Same inputs -> same study, so an interrupted study resumes; changed inputs start a new one.
    study_name = f"custintel-{training_key(settings, data_version)}"
    log.info("tuning: %d trials on %d train / %d val rows (%s)", settings.train.tuning.n_trials,
             len(split.train), len(split.val), resolve_accelerator(settings.train))
    study = run_study(split.train, split.val, names, settings, storage, study_name)
    best = study.best_trial
    epochs = int(best.user_attrs.get("epochs", settings.train.max_epochs))
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "seconds": t.duration.total_seconds() if t.duration else None} for t in study.trials]
    write_json(run_dir / "tuning.json", {"study": study_name, "storage": storage.split("///")[0],
                                         "best_value": study.best_value, "best_params": best.params,
                                         "epochs": epochs, "trials": trials,
                                         "pruned": sum(t.state == optuna.trial.TrialState.PRUNED
                                                       for t in study.trials)})
    log.info("refitting best trial #%d (%s) for %d epochs", best.number, best.params, epochs)
    predictor = refit(pd.concat([split.train, split.val], ignore_index=True), names, best.params,
                      epochs, settings)
    predictor.save(run_dir / "model", extra={"data_version": data_version, "feature_service": FEATURE_SERVICE,
                                             "params": best.params, "epochs": epochs})
    for name in ("train", "val", "holdout"):  # evaluation scores the baselines on the same split
        getattr(split, name).to_parquet(run_dir / f"{name}.parquet", index=False)
    from custintel.steps.segment import segment_customers

    segment_customers(settings, run_dir, predictor)  # segments + tiers are saved with the model
    result = {"run_dir": str(run_dir), "best_params": best.params, "best_val_score": study.best_value,
              "epochs": epochs}
    write_json(run_dir / DONE_FILE, result)  # written last: the run's training is complete
    return result


def finished(run_dir: Path) -> dict | None:
    """The result of a completed training in `run_dir` (its model still there), else None."""
    from custintel.runs import read_json

    done = run_dir / DONE_FILE
    return read_json(done) if done.is_file() and (run_dir / "model" / "model.json").is_file() else None
