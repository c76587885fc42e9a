"""Prefect flow `monitor`: refresh the data (ingest -> features), run a monitoring run against the
deployed model, and start the `retrain` flow when the policy (params.yaml drift.policy) says so.

    custintel monitor [--no-retrain]

A flow failure posts a (deduplicated) alert and re-raises; alerts never fail the flow. A drift episode
starts at most one retrain per champion (custintel.retrain_trigger): when its challenger is rejected,
the following days report `retrain_skipped` until the champion changes or the drift clears.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from custintel import alerts, retrain_trigger
from custintel.config import Settings, load_settings
from custintel.steps import features as features_step
from custintel.steps import ingest as ingest_step
from custintel.steps import monitor as monitor_step
from flows.retry_policy import with_retries


@task(cache_policy=NO_CACHE)
def refresh_data(settings: Settings) -> dict:
    data = ingest_step.ingest(settings)
    built = features_step.build_features(settings, data["data_version"], force=False)
    return {"data_version": data["data_version"], "features_reused": built["reused"]}


@task(cache_policy=NO_CACHE)
def monitoring_run(settings: Settings) -> dict:
    return monitor_step.monitor(settings)


@flow(name="monitor")
def monitor(params_path: str = "params.yaml", retrain_on_policy: bool = True, refresh: bool = True) -> dict:
    settings = load_settings(params_path)
    logger = get_run_logger()
    try:
        data = with_retries(refresh_data, settings)(settings) if refresh else None
        summary = with_retries(monitoring_run, settings)(settings)
    except Exception as exc:
        alerts.flow_failed(settings, "monitor", exc)
        raise
    alerts.clear(settings, "flow_failure:monitor")
    result = {"monitor_run": summary["monitor_run"], "status": summary["status"], "action": summary["action"],
              "reasons": summary["reasons"], "drifted_features": summary["drifted_features"],
              "drifted_share": summary["drifted_share"], "model": summary["model"], "alert": summary["alert"],
              "data": data, "report": summary["html_path"], "summary": summary["json_path"],
              "retrain": None, "retrain_skipped": None}
    if summary["status"] == "no_drift":
        retrain_trigger.end_episode(settings)
    if summary["action"] == "retrain" and retrain_on_policy:
        earlier = retrain_trigger.earlier_retrain(settings, summary["model"])
        if earlier is not None:
            result["retrain_skipped"] = (
                f"this drift already retrained against {summary['model']} (run {earlier['run_id']}, "
                f"{earlier['at']}) and the champion stayed; the next retrain waits for a new champion, the "
                "drift to clear, or the weekly retrain")
            logger.info("policy says retrain, skipped: %s", result["retrain_skipped"])
            return result
        from flows.retrain import retrain

        logger.info("policy says retrain: %s", "; ".join(summary["reasons"]))
        retrained = retrain(params_path=params_path)
        retrain_trigger.record(settings, summary["model"], retrained["run_id"])
        result["retrain"] = {"run_id": retrained["run_id"], "promotion": retrained["promotion"]}
    return result
