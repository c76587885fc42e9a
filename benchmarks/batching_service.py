"""A probe service for benchmarks/serve_batching.py: the same scoring as /predict (OnlineScorer.predict
on the champion, one torch thread, no access log) behind two BentoML APIs that differ only in
BentoML's adaptive batching: `/predict_single` (one call per request) and `/predict_batched`
(`batchable=True`: the dispatcher merges the ids of concurrent requests into one call and splits
the answers back).

    CUSTINTEL_PARAMS=params.yaml bentoml serve benchmarks.batching_service:BatchingProbe
"""

from __future__ import annotations

import os

import bentoml

MAX_BATCH = int(os.environ.get("BATCHING_MAX_BATCH", "1000"))
MAX_LATENCY_MS = int(os.environ.get("BATCHING_MAX_LATENCY_MS", "10"))


@bentoml.service(resources={"cpu": "1"}, workers=1, logging={"access": {"enabled": False}})
class BatchingProbe:
    def __init__(self) -> None:
        import torch

        from custintel.runtime import configure
        from custintel.scoring import OnlineScorer
        from serving.settings import settings as server_settings

        settings = server_settings()
        configure(settings)
        torch.set_num_threads(1)
        self.scorer = OnlineScorer.from_settings(settings, os.environ.get("CUSTINTEL_MODEL_TAG"))

    @bentoml.api
    def predict_single(self, customer_ids: list[int]) -> list[dict]:
        return self.scorer.predict(customer_ids)["predictions"]

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict_batched(self, customer_ids: list[int]) -> list[dict]:
        return self.scorer.predict(customer_ids)["predictions"]

    @bentoml.api(route="/readyz_probe")
    def ready(self) -> str:
        return "ok"
