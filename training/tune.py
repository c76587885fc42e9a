"""Optuna study over the multi-task model, pruned on the Lightning validation score.

The objective is `val_score` = mean of validation churn ROC-AUC and value Spearman (higher is
better). The study lives in SQLite under the data dir (or any SQLAlchemy URL) and resumes: a
rerun only runs the trials still missing.
"""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import optuna
import pandas as pd
from lightning.pytorch.callbacks import EarlyStopping

from custintel.config import Settings
from training.datamodule import CustomerDataModule
from training.lightning_module import CustomerModel
from training.trainer import make_trainer

log = logging.getLogger(__name__)


def suggest_params(trial: optuna.Trial, settings: Settings) -> dict:
    space = settings.train.tuning
    return {
        "hidden_dim": trial.suggest_int("hidden_dim", *space.hidden_dim, log=True),
        "n_layers": trial.suggest_int("n_layers", *space.n_layers),
        "dropout": trial.suggest_float("dropout", *space.dropout),
        "lr": trial.suggest_float("lr", *space.lr, log=True),
        "weight_decay": trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        "value_loss_weight": trial.suggest_float("value_loss_weight", *space.value_loss_weight),
        "batch_size": (trial.suggest_int("batch_size", *space.batch_size, log=True) if space.batch_size
                       else settings.train.batch_size),
    }


def model_params(params: dict) -> dict:
    """The trial's parameters that configure the LightningModule (not the data loading)."""
    return {k: v for k, v in params.items() if k != "batch_size"}


def _pruner(settings: Settings) -> optuna.pruners.BasePruner:
    if settings.train.tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def _objective(trial: optuna.Trial, dm: CustomerDataModule, settings: Settings) -> float:
    from optuna_integration import PyTorchLightningPruningCallback

    pl.seed_everything(settings.base.seed + trial.number, workers=True, verbose=False)
    params = suggest_params(trial, settings)
    dm.batch_size = params["batch_size"]
    model = CustomerModel(n_features=len(dm.scaler.feature_names), spend_log_mean=dm.spend_log_mean,
                          lr_schedule=settings.train.lr_schedule,
                          **model_params(params))
    stopper = EarlyStopping(monitor="val_score", mode="max", patience=settings.train.patience)
    trainer = make_trainer(settings.train, settings.train.max_epochs,
                           callbacks=[stopper, PyTorchLightningPruningCallback(trial, monitor="val_score")])
    trainer.fit(model, datamodule=dm)
    best_epoch = trainer.current_epoch - stopper.wait_count if stopper.wait_count else trainer.current_epoch
    trial.set_user_attr("epochs", max(1, int(best_epoch)))
    return float(stopper.best_score.item() if stopper.best_score is not None else 0.0)


def run_study(train: pd.DataFrame, val: pd.DataFrame, feature_names: list[str], settings: Settings,
              storage: str, study_name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dm = CustomerDataModule(train, val, feature_names, settings.train.batch_size, settings.train.num_workers)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=settings.base.seed),
        pruner=_pruner(settings),
    )
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                   optuna.trial.TrialState.PRUNED)]
    remaining = settings.train.tuning.n_trials - len(done)
    if remaining > 0:
        study.optimize(lambda t: _objective(t, dm, settings), n_trials=remaining,
                       timeout=settings.train.tuning.timeout_s, gc_after_trial=True)
    log.info("study %s: best val_score %.4f with %s", study_name, study.best_value, study.best_params)
    return study
