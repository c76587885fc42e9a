"""Register the run's model in the BentoML store and promote it if it beats the champion on the
same holdout rows by the configured margin."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from custintel import registry
from custintel.alerts import send_alert
from custintel.config import Settings
from custintel.features.schema import CHURN_LABEL, VALUE_LABEL
from custintel.paths import DataPaths
from custintel.runs import read_json, write_json

log = logging.getLogger(__name__)


def register(settings: Settings, run_dir: Path) -> str:
    """Save the run's model to the BentoML store once; returns its tag."""
    record = run_dir / "registered.json"
    if record.is_file():
        return read_json(record)["tag"]
    metrics = read_json(run_dir / "metrics.json")
    spec = read_json(run_dir / "model" / "model.json")
    tag = registry.save_to_store(run_dir / "model", {
        "run_id": run_dir.name, "data_version": metrics["data_version"], "metrics": metrics["model"],
        "holdout_snapshot": metrics["holdout_snapshot"], "feature_service": spec["feature_service"],
        "features": spec["scaler"]["feature_names"], "params": spec["params"],
    })
    write_json(record, {"tag": tag})
    return tag


def _score_on(tag: str, holdout: pd.DataFrame) -> dict:
    from training.metrics import holdout_metrics
    from training.predictor import Predictor

    churn, spend = Predictor.load(registry.model_path(tag)).predict_arrays(holdout)
    return holdout_metrics(holdout[CHURN_LABEL], holdout[VALUE_LABEL], churn, spend)


def promote(settings: Settings, run_dir: Path, tag: str) -> dict:
    paths = DataPaths(settings.data_dir)
    metric = settings.promote.metric
    champion = registry.champion_tag(paths)
    challenger = read_json(run_dir / "metrics.json")["model"]
    decision = {"challenger": tag, "champion_before": champion, "metric": metric,
                "challenger_value": challenger[metric]}
    if champion == tag:
        decision.update(promoted=False, reason="challenger is already the champion")
    elif champion is None:
        decision.update(promoted=True, reason="no champion yet")
    else:
        champ = _score_on(champion, pd.read_parquet(run_dir / "holdout.parquet"))
        delta, margin = challenger[metric] - champ[metric], settings.promote.min_improvement
        # strictly better: a tie keeps the champion
        decision.update(champion_value=champ[metric], delta=delta, promoted=delta > margin,
                        reason=f"{metric} delta {delta:+.4f} vs required more than {margin:+.4f}")
    if decision["promoted"]:
        registry.set_champion(paths, tag, decision["reason"])
        decision["alert_sent"] = send_alert(
            f":rocket: custintel promoted {tag} ({metric} {challenger[metric]:.4f}; {decision['reason']}).",
            settings.alerts)
    log.info("promotion: %s", decision)
    write_json(run_dir / "promotion.json", decision)
    return decision
