"""Prefect flow `retrain`: ingest -> features -> Feast -> tune + train -> evaluate -> drift ->
register -> promote, with Slack-format alerts on drift, promotion and failure.

    custintel retrain             # runs this flow on the local ephemeral Prefect API

Tasks are thin wrappers around custintel.steps; an unchanged rerun reuses data, features and
the trained run. `train` and `evaluate` are cached by Prefect (key: the step, the run id and the
training key, i.e. data version + feature/train settings + seed + code version; results persisted
under <data_dir>/task-results), so a rerun after a failure in a later step (drift, registration,
promotion) continues in the same run directory and Prefect reports those tasks as "Cached". Each
step also leaves a marker in the run directory (trained.json, model_card.md), so a run is never
trained twice even if the task results are deleted; a missing model forces a recompute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from custintel import alerts
from custintel.alerts import send_alert
from custintel.config import Settings, load_settings
from custintel.paths import DataPaths
from custintel.runs import find_run, read_json, record_run, start_run, training_key, write_json
from custintel.steps import evaluate as evaluate_step
from custintel.steps import features as features_step
from custintel.steps import ingest as ingest_step
from custintel.steps import monitor, promote
from custintel.steps import train as train_step
from flows.retry_policy import with_retries


@task(cache_policy=NO_CACHE)
def ingest(settings: Settings) -> dict:
    return ingest_step.ingest(settings)


@task(cache_policy=NO_CACHE)
def build_features(settings: Settings, data_version: str, force: bool) -> dict:
    return features_step.build_features(settings, data_version, force=force)


@task(cache_policy=NO_CACHE)
def feast_apply_and_materialize(settings: Settings) -> dict:
    return {"applied": features_step.feast_apply(settings), **features_step.feast_materialize(settings)}


RESULTS_DIR = "task-results"


def run_step_key(context, parameters: dict) -> str:
    """Prefect cache key of a step of one training run: the step, the run and its training key."""
    key = training_key(parameters["settings"], parameters["data_version"])
    return f"{context.task.name}-{Path(parameters['run_dir']).name}-{key}"


@task(cache_key_fn=run_step_key, persist_result=True)
def train(settings: Settings, run_dir: Path, data_version: str) -> dict:
    return train_step.finished(run_dir) or train_step.train(settings, run_dir, data_version)


@task(cache_key_fn=run_step_key, persist_result=True)
def evaluate(settings: Settings, run_dir: Path, data_version: str) -> dict:
    return evaluate_step.finished(run_dir) or evaluate_step.evaluate(settings, run_dir, data_version)


def run_step(step, settings: Settings, run_dir: Path, data_version: str, done: bool):
    """Run a cached step of a training run; returns (result, Prefect state name: "Cached" when
    reused). `done`: the step's outputs are in the run directory (else its cache is refreshed)."""
    state = step.with_options(result_storage=settings.data_dir / RESULTS_DIR, refresh_cache=not done)(
        settings, run_dir, data_version, return_state=True)
    return state.result(), state.name


@task(cache_policy=NO_CACHE)
def drift(settings: Settings, run_dir: Path) -> dict:
    return monitor.drift(settings, run_dir)


@task(cache_policy=NO_CACHE)
def register_and_promote(settings: Settings, run_dir: Path) -> dict:
    return promote.promote(settings, run_dir, promote.register(settings, run_dir))


@flow(name="retrain")
def retrain(params_path: str = "params.yaml", force: bool = False) -> dict:
    settings = load_settings(params_path)
    logger = get_run_logger()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    alerts.notify(settings, "retrain_started",
                  f":arrows_counterclockwise: custintel retrain started ({started}).", started)
    try:
        summary = _retrain(settings, force, logger)
    except Exception as exc:
        alerts.flow_failed(settings, "retrain", exc)
        raise
    alerts.clear(settings, "flow_failure:retrain")
    alerts.notify(settings, "retrain_finished",
                  f":white_check_mark: custintel retrain finished: run {summary['run_id']}, churn AUC "
                  f"{summary['metrics']['churn_auc']:.3f}, promoted: {summary['promotion']['promoted']}.",
                  summary["run_id"] + started)
    return summary


def _retrain(settings: Settings, force: bool, logger) -> dict:
    paths = DataPaths(settings.data_dir)
    data = with_retries(ingest, settings)(settings)
    version = data["data_version"]
    features = build_features(settings, version, force)
    feast = with_retries(feast_apply_and_materialize, settings)(settings)
    key = training_key(settings, version)
    run_id = None if force else find_run(paths, key)
    reused = run_id is not None
    if reused:
        logger.info("inputs unchanged since run %s: reusing its model and metrics", run_id)
    else:
        run_id = start_run(paths, key, resume=not force)
    run_dir = paths.run_dir(run_id)
    _, train_state = run_step(train, settings, run_dir, version, train_step.finished(run_dir) is not None)
    metrics, evaluate_state = run_step(evaluate, settings, run_dir, version,
                                       evaluate_step.finished(run_dir) is not None)
    logger.info("run %s: train %s, evaluate %s", run_id, train_state, evaluate_state)
    record_run(paths, key, run_id)
    drift_summary = drift(settings, run_dir)
    decision = register_and_promote(settings, run_dir)
    summary = {
        "run_id": run_id, "reused_run": reused, "data_version": version,
        "task_states": {"train": train_state, "evaluate": evaluate_state},
        "data_created": data["created"], "features_reused": features["reused"],
        "materialized_until": feast["materialized_until"], "metrics": metrics["model"],
        "baselines": metrics["baselines"], "drift_share": drift_summary["drifted_share"],
        "drift_status": drift_summary["status"], "drift_action": drift_summary["action"],
        "drift_alert": drift_summary["alert"], "promotion": decision,
        "reports": {"run_dir": str(run_dir), "model_card": str(run_dir / "model_card.md"),
                    "metrics": str(run_dir / "metrics.json"),
                    "drift_html": str(run_dir / "drift.html"), "drift_json": str(run_dir / "drift.json"),
                    "promotion": str(run_dir / "promotion.json"),
                    "ledger": str(paths.registry / "ledger.jsonl"),
                    "segments": str(run_dir / "segments.json"), "scores": str(run_dir / "scores.parquet"),
                    "retention_targets": str(run_dir / "retention_targets.csv")},
    }
    summary["segments_alert_sent"] = _segment_summary(settings, run_dir)
    write_json(run_dir / "summary.json", summary)
    return summary


def _segment_summary(settings: Settings, run_dir) -> bool:
    """Post the segment / tier summary of this run to Slack (when a webhook is configured)."""
    from custintel.steps.segment import slack_summary

    report_file = run_dir / "segments.json"
    if not report_file.is_file():
        return False
    return send_alert(slack_summary(read_json(report_file), settings, run_dir.name), settings.alerts)
