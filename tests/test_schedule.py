"""The scheduled deployments `custintel schedule` serves, built from params.yaml (not served here:
serving is a long-running process)."""

import pytest

from custintel.config import settings_from_dict
from custintel.errors import UserError
from tests.conftest import tiny_params


def test_deployments_follow_the_schedule_settings(tmp_path):
    from flows.serve import deployments

    raw = tiny_params(tmp_path / "data")
    raw["schedule"] = {"monitor_cron": "30 5 * * *", "retrain_cron": "0 2 * * 1"}
    built = {d.name: d for d in deployments("my-params.yaml", settings_from_dict(raw))}
    assert set(built) == {"daily-monitor", "weekly-retrain"}
    assert built["daily-monitor"].schedules[0].schedule.cron == "30 5 * * *"
    assert built["weekly-retrain"].schedules[0].schedule.cron == "0 2 * * 1"
    assert all(d.parameters == {"params_path": "my-params.yaml"} for d in built.values())


def test_a_bad_cron_is_one_clear_error(tmp_path):
    raw = tiny_params(tmp_path / "data")
    raw["schedule"] = {"monitor_cron": "daily"}
    with pytest.raises(UserError, match="schedule.*monitor_cron must be a 5-field cron"):
        settings_from_dict(raw)


def test_a_drift_episode_retrains_once_per_champion(tiny_settings):
    from custintel import retrain_trigger

    assert retrain_trigger.earlier_retrain(tiny_settings, "model:a") is None
    retrain_trigger.record(tiny_settings, "model:a", "run-1")
    assert retrain_trigger.earlier_retrain(tiny_settings, "model:a")["run_id"] == "run-1"
    assert retrain_trigger.earlier_retrain(tiny_settings, "model:b") is None  # a new champion: re-armed
    retrain_trigger.end_episode(tiny_settings)  # the drift cleared
    assert retrain_trigger.earlier_retrain(tiny_settings, "model:a") is None
