"""A monitoring run against the deployed model: gather the inputs, run custintel.monitoring, index the
run, alert (deduplicated) and say what the policy wants.

    custintel monitor            # the Prefect `monitor` flow: ingest, features, this step, maybe retrain
    custintel monitor-runs       # past runs from <data_dir>/monitoring/index.jsonl

Reference: a sample (drift.sample_size rows) of the newest snapshot of the data the model was trained
on, saved as reference.parquet in its run directory. That is the population the model was deployed
to score; the whole training window is not, because a customer base ages (tenure, recency and
lifetime counts of the no-drift data move by up to 1.6 std-devs over the training year).
Current: every customer of the newest snapshot of the offline store.
Model: the champion; without one yet, the given (or latest) run's model.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custintel import alerts, registry
from custintel.config import Settings
from custintel.drift import sample_rows
from custintel.drift_report import append_index, list_runs
from custintel.features.schema import CHURN_LABEL, REVIEW_EMB_FEATURES, TIMESTAMP, VALUE_LABEL, feature_names
from custintel.monitoring import MonitorInputs, run_monitoring
from custintel.paths import DataPaths
from custintel.runs import resolve_run

log = logging.getLogger(__name__)
REFERENCE_FILE = "reference.parquet"
REFERENCE_META = "reference.json"


def monitoring_dir(settings: Settings) -> Path:
    return settings.data_dir / "monitoring"


def _snapshot(path: Path, when=None) -> pd.DataFrame:
    """Rows of one snapshot of an offline-store file (default the newest), read with a filter."""
    if when is None:
        when = pc.max(pq.read_table(path, columns=[TIMESTAMP])[TIMESTAMP]).as_py()
    if when is None:
        return pd.DataFrame()
    return pq.read_table(path, filters=[(TIMESTAMP, "=", pd.Timestamp(when))]).to_pandas()


def _projection_fingerprint(paths: DataPaths) -> str | None:
    meta = paths.offline / "text_projection.json"
    return json.loads(meta.read_text()).get("fingerprint") if meta.is_file() else None


def _current_data_version(paths: DataPaths) -> str | None:
    from custintel.data.versioning import data_version

    return data_version(paths.dvc_repo)


def save_reference(settings: Settings, run_dir: Path) -> dict:
    """Sample the newest snapshot of the offline store into <run_dir>/reference.parquet. Call it while
    the offline store holds the data the run trained on (the retrain flow does)."""
    paths = DataPaths(settings.data_dir)
    current = _snapshot(paths.features_file)
    sample = sample_rows(current, settings.drift.sample_size, settings.base.seed)
    sample.to_parquet(run_dir / REFERENCE_FILE, index=False)
    meta = {"snapshot": str(current[TIMESTAMP].max()) if len(current) else None, "rows": len(current),
            "sample": len(sample), "data_version": _current_data_version(paths),
            "text_projection": _projection_fingerprint(paths)}
    (run_dir / REFERENCE_META).write_text(json.dumps(meta, indent=2))
    return meta


def _model(settings: Settings, run_dir: Path | None):
    """(label, predictor, run directory) of the champion, else of `run_dir` / the latest run."""
    from training.predictor import Predictor

    paths = DataPaths(settings.data_dir)
    tag = registry.champion_tag(paths)
    if tag is not None:
        import bentoml

        run_id = bentoml.models.get(tag).info.metadata.get("run_id")
        if run_id and paths.run_dir(run_id).is_dir():
            return tag, Predictor.load(registry.model_path(tag)), paths.run_dir(run_id)
        log.warning("champion %s names no run directory; monitoring the latest run instead", tag)
    run_dir = run_dir or resolve_run(paths, None)
    return f"run {run_dir.name} (no champion yet)", Predictor.load(run_dir / "model"), run_dir


def _trained_on_current_data(settings: Settings, run_dir: Path) -> bool:
    metrics = run_dir / "metrics.json"
    trained_on = json.loads(metrics.read_text())["data_version"] if metrics.is_file() else None
    return trained_on is not None and trained_on == _current_data_version(DataPaths(settings.data_dir))


def _reference(settings: Settings, model_run: Path) -> tuple[pd.DataFrame, dict, list[str]]:
    notes: list[str] = []
    if not (model_run / REFERENCE_FILE).is_file():
        if not _trained_on_current_data(settings, model_run):
            notes.append(f"run {model_run.name} has no {REFERENCE_FILE} and the data changed since it "
                         "trained: no reference to compare with (retrain to make one)")
            return pd.DataFrame(), {}, notes
        save_reference(settings, model_run)
        notes.append(f"reference saved for run {model_run.name} from its own training data")
    return (pd.read_parquet(model_run / REFERENCE_FILE),
            json.loads((model_run / REFERENCE_META).read_text()), notes)


def _matured(paths: DataPaths, snapshot: str | None, newest) -> pd.DataFrame | None:
    """Current features + labels of the reference snapshot once its horizon has passed."""
    if snapshot is None or not paths.labels_file.is_file() or pd.Timestamp(snapshot) >= newest:
        return None
    labels = _snapshot(paths.labels_file, pd.Timestamp(snapshot))
    if not len(labels):
        return None
    feats = _snapshot(paths.features_file, pd.Timestamp(snapshot))
    return feats.merge(labels[["customer_id", CHURN_LABEL, VALUE_LABEL]], on="customer_id")


def gather(settings: Settings, run_dir: Path | None = None) -> tuple[MonitorInputs, dict]:
    """The inputs of a monitoring run and where they came from."""
    from custintel.steps.features import built_groups

    paths = DataPaths(settings.data_dir)
    model, predictor, model_run = _model(settings, run_dir)
    reference, meta, notes = _reference(settings, model_run)
    current = _snapshot(paths.features_file) if paths.features_file.is_file() else pd.DataFrame()
    features = [f for f in feature_names(built_groups(settings)) if f in predictor.feature_names] \
        or predictor.feature_names
    refitted = meta.get("text_projection") != _projection_fingerprint(paths)
    if refitted and set(REVIEW_EMB_FEATURES) & set(features):
        features = [f for f in features if f not in REVIEW_EMB_FEATURES]
        notes.append("review_emb_* not compared: the text projection was refitted since the reference, "
                     "so its coordinates mean something else")
    newest = current[TIMESTAMP].max() if len(current) else None
    holdout = model_run / "holdout.parquet"
    baseline = json.loads((model_run / "metrics.json").read_text())["model"] \
        if (model_run / "metrics.json").is_file() else None
    inputs = MonitorInputs(
        reference=reference, current=current.drop(columns=["customer_id", TIMESTAMP], errors="ignore"),
        features=features, predict=predictor.predict_arrays,
        matured=_matured(paths, meta.get("snapshot"), newest) if newest is not None else None,
        target_reference=pd.read_parquet(holdout) if holdout.is_file() else None, baseline=baseline,
        notes=notes)
    source = {"model": model, "model_run": model_run.name, "reference_snapshot": meta.get("snapshot"),
              "current_snapshot": str(newest) if newest is not None else None}
    return inputs, source


def _alert(settings: Settings, summary: dict, source: dict) -> str | None:
    report = summary.get("html_path") or summary["json_path"]
    if summary["status"] == "no_drift":
        return alerts.clear(settings, "drift", f":white_check_mark: custintel: drift cleared for "
                                               f"{source['model']} (snapshot {source['current_snapshot']}).")
    if summary["status"] == "failed":
        checks = sorted({f"{i['check']}:{i['feature']}" for i in summary["quality"]["issues"]})
        text = (f":rotating_light: custintel monitoring FAILED for {source['model']}: the data looks broken, "
                f"not drifted (no retrain). " + "; ".join(summary["reasons"][:5]) + f". Report: {report}")
        return alerts.notify(settings, "drift", text, "failed|" + ",".join(checks))
    top = ", ".join(f"{c} ({r['method']} {r['value']:.3g}, {r['severity']:.1f}x threshold)"
                    for c in summary["drifted_features"][:5] for r in [summary["per_feature"][c]])
    preds = [c for c, r in summary["prediction_drift"].items() if r["drifted"]]
    text = (f":warning: custintel drift for {source['model']}: {summary['drifted_share']:.0%} of features "
            f"drifted; action: {summary['action']}. Top: {top or 'none'}"
            + (f". Prediction drift: {', '.join(preds)}" if preds else "")
            + f". {'; '.join(summary['reasons'])}. Report: {report}")
    drifted = ",".join(sorted(summary["drifted_features"]))
    fingerprint = "|".join([summary["action"], drifted, ",".join(preds)])
    return alerts.notify(settings, "drift", text, fingerprint)


def monitor(settings: Settings, run_dir: Path | None = None, out_dir: Path | None = None) -> dict:
    """One monitoring run; writes drift.html/drift.json into `out_dir` (default a new folder under
    <data_dir>/monitoring), indexes it, alerts, and returns the summary (its "action" is the policy's)."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    out_dir = out_dir or monitoring_dir(settings) / run_id
    inputs, source = gather(settings, run_dir)
    summary = run_monitoring(inputs, settings.drift, settings.base.seed, out_dir)
    summary.update(source, monitor_run=run_id)
    summary["alert"] = _alert(settings, summary, source)
    (out_dir / "drift.json").write_text(json.dumps(summary, indent=2, default=str))
    append_index(monitoring_dir(settings), {
        "monitor_run": run_id, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": summary["status"], "action": summary["action"], "model": source["model"],
        "reference_snapshot": source["reference_snapshot"], "current_snapshot": source["current_snapshot"],
        "drifted_share": round(summary["drifted_share"], 4),
        "drifted_features": summary["drifted_features"][:10],
        "quality_issues": len(summary["quality"]["issues"]), "alert": summary["alert"],
        "html": summary["html_path"], "json": summary["json_path"]})
    log.info("monitoring %s: %s, action %s", run_id, summary["status"], summary["action"])
    return summary


def drift(settings: Settings, run_dir: Path) -> dict:
    """The retrain flow's drift step: save the run's reference, then monitor the champion (or, before
    the first promotion, this run) into the run directory."""
    if not (run_dir / REFERENCE_FILE).is_file() and _trained_on_current_data(settings, run_dir):
        save_reference(settings, run_dir)
    return monitor(settings, run_dir=run_dir, out_dir=run_dir)


def past_runs(settings: Settings, limit: int | None = None) -> list[dict]:
    return list_runs(monitoring_dir(settings), limit)
