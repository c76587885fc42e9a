"""The Optuna study: resumes after an interruption, tunes the batch size, prunes only when asked."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from custintel.config import settings_from_dict
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, FEATURE_NAMES, TIMESTAMP, VALUE_LABEL
from tests.conftest import tiny_params
from training.tune import run_study


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.gamma(2.0, 10.0, (n, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    frame[ENTITY_KEY], frame[TIMESTAMP] = np.arange(n), pd.Timestamp("2024-06-01", tz="UTC")
    frame[CHURN_LABEL] = (frame["recency_days"] + rng.normal(0, 5, n) > 20).astype(int)
    frame[VALUE_LABEL] = np.where(frame[CHURN_LABEL] == 1, 0.0, frame["monetary_mean"] * 2)
    return frame


def _settings(tmp_path, trials: int, pruner: str = "median"):
    raw = tiny_params(tmp_path / "data")
    raw["train"]["tuning"].update(n_trials=trials, pruner=pruner, batch_size=[64, 512])
    return settings_from_dict(raw)


def test_an_interrupted_study_resumes_where_it_stopped(tmp_path):
    train, val, storage = _frame(400, 0), _frame(200, 1), f"sqlite:///{tmp_path}/optuna.db"
    first = run_study(train, val, FEATURE_NAMES, _settings(tmp_path, 1), storage, "s")
    first_params = first.trials[0].params
    # A crash mid-trial leaves a RUNNING trial behind; it must not count as done.
    optuna.load_study(study_name="s", storage=storage).ask()
    resumed = run_study(train, val, FEATURE_NAMES, _settings(tmp_path, 3), storage, "s")
    finished = [t for t in resumed.trials if t.state.is_finished()]
    assert len(finished) == 3 and resumed.trials[0].params == first_params
    assert all(64 <= t.params["batch_size"] <= 512 for t in finished)
    again = run_study(train, val, FEATURE_NAMES, _settings(tmp_path, 3), storage, "s")
    assert len(again.trials) == len(resumed.trials)  # nothing left to run


def test_no_trial_is_pruned_without_a_pruner(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = run_study(_frame(400, 0), _frame(200, 1), FEATURE_NAMES, _settings(tmp_path, 4, "none"),
                      storage, "nopruning")
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
