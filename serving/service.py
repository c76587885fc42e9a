"""BentoML service: POST /predict {"customer_ids": [...]} -> churn probability, predicted spend,
value tier and segment; GET /segments -> the served model's segment profiles.

    custintel serve              # or: bentoml serve serving.service:CustomerIntelService

Reads params from $CUSTINTEL_PARAMS and the data dir from $CUSTINTEL_DATA_DIR; serves the
champion model from the BentoML model store with online features from Feast.
"""

from __future__ import annotations

import os

import bentoml
from bentoml.exceptions import InvalidArgument
from fastapi import FastAPI

EXAMPLE_INPUT = {"customer_ids": [1, 2, 3]}
http = FastAPI(title="custintel read-only endpoints")  # GET routes beside BentoML's POST APIs


@bentoml.service(resources={"cpu": "1"}, traffic={"timeout": 30})
@bentoml.asgi_app(http, path="/")
class CustomerIntelService:
    def __init__(self) -> None:
        from custintel.config import load_settings
        from custintel.runtime import configure
        from custintel.scoring import OnlineScorer

        settings = load_settings(os.environ.get("CUSTINTEL_PARAMS"))
        configure(settings)
        self.max_ids = settings.serve.max_ids_per_request
        self.scorer = OnlineScorer.from_settings(settings, os.environ.get("CUSTINTEL_MODEL_TAG"))

    @bentoml.api
    def predict(self, customer_ids: list[int]) -> dict:
        if not customer_ids:
            raise InvalidArgument("customer_ids: send at least one id")
        if len(customer_ids) > self.max_ids:
            raise InvalidArgument(f"customer_ids: at most {self.max_ids} ids per request "
                                  f"(got {len(customer_ids)}); split the request")
        return self.scorer.predict(customer_ids)

    @http.get("/segments")
    def segments(self) -> dict:
        """GET /segments: the served model's segment profiles."""
        return self.scorer.segments()
