"""Evaluate: the trained model, the baselines (RFM rule, LightGBM) and, on generated data, the
ground-truth oracle on the same time-based holdout rows -> metrics.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from custintel.config import Settings
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, TIMESTAMP, VALUE_LABEL
from custintel.paths import DataPaths
from custintel.runs import read_json, write_json


def oracle_metrics(holdout: pd.DataFrame, ground_truth_file: Path) -> dict | None:
    """Metrics of the generator's true scores on the same holdout rows (None for real data)."""
    from custintel.data.ground_truth import TRUE_CHURN, TRUE_SPEND
    from training.metrics import holdout_metrics

    if not ground_truth_file.is_file():
        return None
    keys = [ENTITY_KEY, TIMESTAMP]
    truth = pd.read_parquet(ground_truth_file)
    rows = holdout[[*keys, CHURN_LABEL, VALUE_LABEL]].merge(truth, on=keys, how="left")
    if rows[TRUE_CHURN].isna().any():
        return None
    return holdout_metrics(rows[CHURN_LABEL], rows[VALUE_LABEL], rows[TRUE_CHURN], rows[TRUE_SPEND])


def evaluate(settings: Settings, run_dir: Path, data_version: str) -> dict:
    from training.baselines import lightgbm_baseline, rfm_rule
    from training.metrics import holdout_metrics
    from training.predictor import Predictor

    holdout = pd.read_parquet(run_dir / "holdout.parquet")
    train, val = pd.read_parquet(run_dir / "train.parquet"), pd.read_parquet(run_dir / "val.parquet")
    predictor = Predictor.load(run_dir / "model")

    def score(churn_prob, spend) -> dict:
        return holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL], churn_prob, spend)

    metrics = {
        "model": score(*predictor.predict_arrays(holdout)),
        "baselines": {
            "lightgbm": score(*lightgbm_baseline(train, val, holdout, predictor.feature_names,
                                                  settings.base.seed)),
            "rfm_rule": score(*rfm_rule(holdout, settings.features.horizon_days)),
        },
        "oracle": oracle_metrics(holdout, DataPaths(settings.data_dir).ground_truth_file),
        "holdout_snapshot": pd.Timestamp(holdout[TIMESTAMP].iloc[0]).isoformat(),
        "data_version": data_version,
        "tuning": {k: v for k, v in read_json(run_dir / "tuning.json").items() if k != "trials"},
    }
    if metrics["oracle"]:
        metrics["share_of_oracle"] = {
            k: metrics["model"][k] / metrics["oracle"][k] for k in ("churn_auc", "value_spearman")}
    write_json(run_dir / "metrics.json", metrics)
    return metrics
