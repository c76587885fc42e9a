"""Drift: Evidently report of the training window vs the newest snapshot, and the alert it raises."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from custintel.alerts import send_alert
from custintel.config import Settings
from custintel.drift import drift_report
from custintel.features.schema import TIMESTAMP, feature_names
from custintel.paths import DataPaths
from custintel.runs import read_json


def drift(settings: Settings, run_dir: Path) -> dict:
    from custintel.steps.features import built_groups

    features = pd.read_parquet(DataPaths(settings.data_dir).features_file)
    ts = pd.to_datetime(features[TIMESTAMP], utc=True)
    train_snaps = pd.to_datetime(read_json(run_dir / "split.json")["train"]["snapshots"], utc=True)
    reference = features[ts.isin(train_snaps)]
    current = features[ts == ts.max()]
    summary = drift_report(reference, current, feature_names(built_groups(settings)),
                           settings.drift.share_threshold, settings.drift.sample_size,
                           settings.base.seed, run_dir)
    result = summary.to_dict()
    if summary.alert:
        top = ", ".join(summary.drifted_features[:5])
        result["alert_sent"] = send_alert(
            f":warning: custintel drift: {summary.drifted_share:.0%} of features drifted "
            f"(threshold {summary.threshold:.0%}) in run {run_dir.name}. Top: {top}. "
            f"Report: {summary.html_path}", settings.alerts)
    return result
