"""Simulate weeks of the two scheduled deployments in one process, one flow run per schedule slot.

    python -m tests.scenario_weeks SPEC_JSON      # prints one JSON line per slot

SPEC_JSON: {"params": base params dict, "workdir": dir, "start": "2025-04-06T00:00:00+00:00",
"weeks": 4, "drift_from": "2025-04-30T00:00:00+00:00", "scenario": "new_customer_surge",
"scenario_start": "2025-01-01"}.

The slots are the times Prefect's scheduler computes from the cron schedules of the deployments
`custintel schedule` serves (flows.serve.deployments): `daily-monitor` (monitor flow) and
`weekly-retrain` (retrain flow). "Today" advances per slot: each slot's params set data.end_date to
the slot's day, with data.simulate_until at the end of the simulation and the same seed, so each slot
sees a new data revision of one simulated shop, the history up to that day (a prefix of the next
one). For the slots from `drift_from` on, the generator runs `scenario` from `scenario_start`.
Every slot's flow runs against the same data directory, registry, ledger and alert state, as the
served deployments would.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml


def schedule_slots(settings, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """(time, deployment name) of every scheduled run in [start, end), in order, as Prefect's scheduler
    computes them from the deployments' cron schedules."""
    from prefect.server.schemas.schedules import CronSchedule

    from flows.serve import deployments

    slots = []
    for deployment in deployments("params.yaml", settings):
        cron = deployment.schedules[0].schedule
        dates = asyncio.run(CronSchedule(cron=cron.cron, timezone=cron.timezone or "UTC").get_dates(
            n=1000, start=start, end=end - timedelta(microseconds=1)))
        slots += [(datetime.fromisoformat(str(d)), deployment.name) for d in dates]
    return sorted(slots)


def slot_params(spec: dict, when: datetime) -> dict:
    raw = copy.deepcopy(spec["params"])
    raw["data"]["end_date"] = when.date().isoformat()
    raw["data"]["simulate_until"] = (datetime.fromisoformat(spec["start"])
                                     + timedelta(weeks=spec["weeks"])).date().isoformat()
    if when >= datetime.fromisoformat(spec["drift_from"]):
        raw["data"].update(scenario=spec["scenario"], scenario_start=spec["scenario_start"])
    return raw


def main(spec: dict) -> None:
    from custintel.config import settings_from_dict
    from custintel.runtime import configure, setup_logging

    setup_logging()
    workdir = Path(spec["workdir"])
    base = settings_from_dict(spec["params"])
    configure(base)  # one data directory for every slot; before prefect is imported
    from flows.monitor import monitor
    from flows.retrain import retrain

    start = datetime.fromisoformat(spec["start"])
    for when, deployment in schedule_slots(base, start, start + timedelta(weeks=spec["weeks"])):
        week = (when - start).days // 7 + 1
        params = workdir / f"params-{when:%Y%m%dT%H%M}.yaml"
        params.write_text(yaml.safe_dump(slot_params(spec, when)))
        row = {"slot": when.isoformat(), "deployment": deployment, "week": week}
        started = time.perf_counter()
        try:
            if deployment == "daily-monitor":
                result = monitor(params_path=str(params))
                row.update(status=result["status"], action=result["action"], alert=result["alert"],
                           drifted=result["drifted_features"], data_version=result["data"]["data_version"],
                           retrain=result["retrain"], retrain_skipped=result["retrain_skipped"],
                           drifted_predictions=sorted(
                               name for name, r in json.loads(Path(result["summary"]).read_text())[
                                   "prediction_drift"].items() if r["drifted"]))
            else:
                result = retrain(params_path=str(params))
                row.update(run_id=result["run_id"], data_version=result["data_version"],
                           promoted=result["promotion"]["promoted"], reason=result["promotion"]["reason"],
                           drift_status=result["drift_status"])
        except Exception as exc:  # noqa: BLE001 - a failed scheduled run does not stop the schedule
            row.update(failed=f"{type(exc).__name__}: {exc}")
        row["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(row, default=str), flush=True)


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
