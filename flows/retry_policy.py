"""Retries of the flows' flaky tasks (data pulls, Feast writes, monitoring, batch scoring).

A task failing with an ordinary exception (a locked SQLite file, a Redis connection reset, a DVC
remote that is briefly unreachable) is retried `schedule.task_retries` times, waiting
`schedule.retry_backoff_s`, then twice that, then four times that (Prefect's exponential_backoff),
each wait jittered by up to `schedule.retry_jitter` of itself so that runs failing together do not
retry in lockstep. A UserError (wrong config, bad data, a corrupted DVC cache) is never retried:
the same input fails the same way, so the flow fails at once with the one clear message.
"""

from __future__ import annotations

from prefect.tasks import exponential_backoff

from custintel.config import Settings
from custintel.errors import UserError


def retry_unless_user_error(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: retry every failure except a UserError."""
    try:
        state.result()
    except UserError:
        return False
    except BaseException:  # noqa: BLE001 - any other failure may be transient
        return True
    return True


def with_retries(task, settings: Settings):
    """`task` with the configured retry count, exponential backoff, jitter and retry condition."""
    policy = settings.schedule
    return task.with_options(
        retries=policy.task_retries,
        retry_delay_seconds=exponential_backoff(policy.retry_backoff_s)(policy.task_retries),
        retry_jitter_factor=policy.retry_jitter or None,
        retry_condition_fn=retry_unless_user_error,
    )
