"""Flaky flow tasks retry with exponential backoff; a UserError fails at once (a real Prefect run)."""

from __future__ import annotations

import time

import pytest
import yaml
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from custintel.config import settings_from_dict
from custintel.errors import UserError
from flows import monitor, retrain, score_batch
from flows.retry_policy import retry_unless_user_error, with_retries
from tests.conftest import tiny_params


def settings_with(tmp_path, **schedule):
    raw = tiny_params(tmp_path / "data")
    raw["schedule"].update(schedule)
    return settings_from_dict(raw)


def test_the_configured_policy_is_exponential_backoff_with_jitter(tmp_path):
    settings = settings_with(tmp_path, task_retries=3, retry_backoff_s=2.0, retry_jitter=0.5)
    retried = with_retries(retrain.ingest, settings)
    assert retried.retries == 3
    assert retried.retry_delay_seconds == [2.0, 4.0, 8.0]
    assert retried.retry_jitter_factor == 0.5
    assert retried.retry_condition_fn is retry_unless_user_error


CALLS: list[float] = []


@task(cache_policy=NO_CACHE)
def flaky(fail_times: int) -> str:
    CALLS.append(time.monotonic())
    if len(CALLS) <= fail_times:
        raise ConnectionError(f"transient failure {len(CALLS)}")
    return "done"


@task(cache_policy=NO_CACHE)
def misconfigured() -> str:
    CALLS.append(time.monotonic())
    raise UserError("params.yaml: data.source is wrong; fix it")


def test_a_transient_failure_is_retried_with_growing_waits_and_a_user_error_is_not(tmp_path):
    settings = settings_with(tmp_path, task_retries=3, retry_backoff_s=0.3, retry_jitter=0.0)

    @flow
    def flaky_flow() -> str:
        return with_retries(flaky, settings)(2)

    @flow
    def misconfigured_flow() -> str:
        return with_retries(misconfigured, settings)()

    CALLS.clear()
    assert flaky_flow() == "done"
    assert len(CALLS) == 3
    first_wait, second_wait = CALLS[1] - CALLS[0], CALLS[2] - CALLS[1]
    assert first_wait >= 0.3 and second_wait >= 0.6  # lower bounds: a wait is never shorter than set

    CALLS.clear()
    with pytest.raises(UserError, match="data.source"):
        misconfigured_flow()
    assert len(CALLS) == 1

    CALLS.clear()
    give_up = settings_with(tmp_path, task_retries=1, retry_backoff_s=0.0, retry_jitter=0.0)

    @flow
    def hopeless_flow() -> str:
        return with_retries(flaky, give_up)(5)

    with pytest.raises(ConnectionError, match="transient failure 2"):
        hopeless_flow()
    assert len(CALLS) == 2


class FlakyStep:
    """A step function that fails `fail_times` times with a transient error, then returns `result`."""

    def __init__(self, fail_times: int, result: dict):
        self.fail_times, self.result, self.calls = fail_times, result, 0

    def __call__(self, *args, **kwargs) -> dict:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise OSError("database is locked")
        return self.result


def stop_with_user_error(*args, **kwargs):
    stop_with_user_error.calls += 1
    raise UserError("stop here: the rest of the flow is not under test")


def test_the_flows_retry_their_flaky_steps_and_stop_at_a_user_error(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    raw = tiny_params(tmp_path / "data")
    raw["schedule"].update(task_retries=2, retry_backoff_s=0.01, retry_jitter=0.0)
    params.write_text(yaml.safe_dump(raw))

    ingest = FlakyStep(2, {"data_version": "v1"})
    monkeypatch.setattr(retrain.ingest_step, "ingest", ingest)
    monkeypatch.setattr(retrain.features_step, "build_features", lambda *a, **k: {"reused": True})
    stop_with_user_error.calls = 0
    monkeypatch.setattr(retrain.features_step, "feast_apply", stop_with_user_error)
    with pytest.raises(UserError, match="stop here"):
        retrain.retrain(str(params))
    assert ingest.calls == 3 and stop_with_user_error.calls == 1

    refresh = FlakyStep(1, {"data_version": "v1"})
    monkeypatch.setattr(monitor.ingest_step, "ingest", refresh)
    stop_with_user_error.calls = 0
    monkeypatch.setattr(monitor.monitor_step, "monitor", stop_with_user_error)
    with pytest.raises(UserError, match="stop here"):
        monitor.monitor(str(params))
    assert refresh.calls == 2 and stop_with_user_error.calls == 1

    scoring = FlakyStep(2, {"rows": 0})
    monkeypatch.setattr(score_batch, "score_batch_step", scoring)
    assert score_batch.score_batch(str(params), out=str(tmp_path / "scores.parquet")) == {"rows": 0}
    assert scoring.calls == 3
