"""BentoML service: POST /predict {"customer_ids": [...]} -> churn probability, predicted spend,
value tier and segment; GET /segments -> the served model's segment profiles; GET /metadata ->
the served model's version and lineage.

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
        from custintel.champion_watch import ChampionWatcher
        from custintel.paths import DataPaths

        # the champion, swapped in place when the pointer changes (custintel/champion_watch.py)
        self.models = ChampionWatcher(DataPaths(settings.data_dir),
                                      lambda tag: OnlineScorer.from_settings(settings, tag),
                                      os.environ.get("CUSTINTEL_MODEL_TAG"), settings.serve.reload_interval_s)

    @property
    def scorer(self):
        return self.models.current().model

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

    @http.get("/metadata")
    def metadata(self) -> dict:
        """GET /metadata: the served version and its lineage (data revision, Feast registry version,
        git commit, Optuna study and trial, params, metrics, parent champion)."""
        served = self.models.current()
        return {"model_version": served.tag, "loaded_at": served.loaded_at, "lineage": served.metadata,
                "reload_error": self.models.last_error}
