"""Prefect flow `score-batch`: score every current customer with the champion into one parquet file.

    custintel score-batch --out scores.parquet        # the same, without Prefect

The task wraps custintel.batch_scoring.score_batch; schedule the flow (e.g. daily, after
`custintel materialize`) with `score_batch.serve(cron=...)` or a Prefect deployment.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from custintel.batch_scoring import score_batch as score_batch_step
from custintel.config import Settings, load_settings
from flows.retry_policy import with_retries


@task(cache_policy=NO_CACHE)
def score_all_customers(settings: Settings, out: Path, model_tag: str | None = None) -> dict:
    return score_batch_step(settings, out, model_tag)


@flow(name="score-batch")
def score_batch(params_path: str = "params.yaml", out: str | None = None,
                model_tag: str | None = None) -> dict:
    settings = load_settings(params_path)
    target = Path(out) if out else settings.data_dir / "batch_scores.parquet"
    return with_retries(score_all_customers, settings)(settings, target, model_tag)
