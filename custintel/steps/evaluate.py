"""Evaluate: the trained model and a simple RFM rule on the time-based holdout -> metrics.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from custintel.config import Settings
from custintel.features.schema import CHURN_LABEL, TIMESTAMP, VALUE_LABEL
from custintel.runs import read_json, write_json


def rfm_rule(holdout: pd.DataFrame, horizon_days: int) -> tuple[pd.Series, pd.Series]:
    """Baseline: churn risk rises with recency; spend = last 90 days' spend scaled to the horizon."""
    return holdout["recency_days"].rank(pct=True), holdout["spend_90d"] * horizon_days / 90.0


def evaluate(settings: Settings, run_dir: Path, data_version: str) -> dict:
    from training.metrics import holdout_metrics
    from training.predictor import Predictor

    holdout = pd.read_parquet(run_dir / "holdout.parquet")
    predictor = Predictor.load(run_dir / "model")
    churn_prob, spend = predictor.predict_arrays(holdout)
    rule_churn, rule_spend = rfm_rule(holdout, settings.features.horizon_days)
    metrics = {
        "model": holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL], churn_prob, spend),
        "baselines": {"rfm_rule": holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL],
                                                  rule_churn, rule_spend)},
        "holdout_snapshot": pd.Timestamp(holdout[TIMESTAMP].iloc[0]).isoformat(),
        "data_version": data_version,
        "tuning": {k: v for k, v in read_json(run_dir / "tuning.json").items() if k != "trials"},
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics
