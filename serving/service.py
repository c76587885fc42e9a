"""BentoML service of the champion model.

    custintel serve              # or: bentoml serve serving.service:CustomerIntelService

Endpoints (README "Serving"):
    POST /predict            {"customer_ids": [...]} -> churn probability, predicted spend, value tier,
                             segment, model version, feature timestamp and staleness per customer
    POST /predict_features   {"rows": [{feature: value}]} -> the same scores for raw feature rows (what-if)
    GET  /segments           the served model's segment profiles
    GET  /metadata           the served version and its lineage; a new champion is swapped in while serving
    GET  /healthz, /livez    liveness; GET /readyz: model loaded and online store reachable (else 503)
    GET  /metrics            BentoML's Prometheus metrics

Malformed requests get 422 naming the field (serving.validation), oversized bodies 413
(serving.limits), requests without the API key 401 when one is configured (serving.auth), and an
unreachable online store 503 (custintel.online_rows). Reads params from $CUSTINTEL_PARAMS and the data
dir from $CUSTINTEL_DATA_DIR; serves the champion (or $CUSTINTEL_MODEL_TAG) from the BentoML model
store with online features from Feast.
"""

from __future__ import annotations

import logging
import os

import bentoml
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from custintel.online_rows import OnlineStoreUnavailable
from serving.auth import ApiKeyMiddleware
from serving.limits import BodyLimitMiddleware
from serving.timing import NO_STAGES, SCOPE_KEY, ServerTimingMiddleware
from serving.validation import RequestInvalid

log = logging.getLogger(__name__)
http = FastAPI(title="custintel customer scores")  # routes beside BentoML's own (/readyz, /metrics, ...)


async def _current_service():
    return bentoml.get_current_service()


# BentoML gives the class-view routes their `self` through the sync dependency get_current_service,
# which FastAPI runs in a worker thread: a thread hop on every request. The same lookup, awaited.
http.dependency_overrides[bentoml.get_current_service] = _current_service


@http.exception_handler(RequestInvalid)
async def _invalid(_: Request, exc: RequestInvalid) -> JSONResponse:
    return JSONResponse({"error": str(exc), "detail": exc.errors}, status_code=422)


@http.exception_handler(OnlineStoreUnavailable)
async def _store_down(_: Request, exc: OnlineStoreUnavailable) -> JSONResponse:
    return JSONResponse({"error": f"online feature store unavailable ({exc}); retry later, the server "
                                  "reconnects on the next request"}, status_code=503)


def _options() -> dict:
    """BentoML service options from the serve settings ($CUSTINTEL_PARAMS, else ./params.yaml): worker
    count and access log. Imported where there are no params (e.g. a bento build from elsewhere):
    BentoML's defaults, as a server needs the params anyway and reads them again when it starts."""
    from pathlib import Path

    from custintel.config import PARAMS_ENV
    from serving.settings import serve_settings

    if not os.environ.get(PARAMS_ENV) and not Path("params.yaml").is_file():
        return {}
    serve = serve_settings()
    return {"workers": serve.workers, "logging": {"access": {"enabled": serve.access_log}}}


@bentoml.service(resources={"cpu": "1"}, traffic={"timeout": 30}, **_options())
@bentoml.asgi_app(http, path="/")
class CustomerIntelService:
    def __init__(self) -> None:
        from custintel.champion_watch import ChampionWatcher
        from custintel.paths import DataPaths
        from custintel.runtime import configure
        from custintel.scoring import OnlineScorer
        from serving.settings import settings as server_settings

        settings = server_settings()
        configure(settings)
        import torch

        # a request is a few rows: intra-op threads only add hand-offs, and under load they spin and
        # wait for cores (tens of ms per forward pass measured on the shared 2-core machine)
        torch.set_num_threads(1)

        # the champion, swapped in place when the pointer changes (custintel/champion_watch.py)
        self.models = ChampionWatcher(DataPaths(settings.data_dir),
                                      lambda tag: OnlineScorer.from_settings(settings, tag),
                                      os.environ.get("CUSTINTEL_MODEL_TAG"), settings.serve.reload_interval_s)
        self._limits = (settings.serve.max_ids_per_request, settings.serve.max_feature_rows_per_request)
        self._request_models: dict = {}  # per served version (its feature names)
        self._store_problem: str | None = None

    @property
    def scorer(self):
        return self.models.current().model

    def _served(self):
        """The served version and its request models: one request is validated and answered by
        one version, even when a new champion is swapped in meanwhile."""
        from serving.validation import RequestModels

        served = self.models.current()
        requests = self._request_models.get(served.tag)
        if requests is None:
            requests = self._request_models[served.tag] = RequestModels(
                *self._limits, served.model.predictor.feature_names)
        return served.model, requests

    def __is_ready__(self) -> bool:
        """BentoML's GET /readyz: 200 when the model is loaded and the online store answers a read."""
        problem = "no model loaded" if self.scorer is None else self.scorer.check_store()
        if problem != self._store_problem:  # log changes only: probes come every few seconds
            if problem:
                log.warning("not ready: %s", problem)
            else:
                log.info("ready again")
            self._store_problem = problem
        return problem is None

    @http.post("/predict", response_class=Response)
    async def predict(self, request: Request) -> Response:
        """POST /predict {"customer_ids": [...]}: one entry per id, `found: false` for unknown ids."""
        stages = request.scope.get(SCOPE_KEY, NO_STAGES)
        scorer, requests = self._served()
        body = await request.body()
        stages.restart()
        ids = requests.customer_ids(body)
        stages.mark("parse")
        # scored on the event loop: the work is CPU-bound and about a millisecond (1 id) to a few (100
        # ids); a worker thread would add a hand-off and GIL contention to every request
        return _json(scorer.predict(ids, stages.mark), stages)

    @http.post("/predict_features", response_class=Response)
    async def predict_features(self, request: Request) -> Response:
        """POST /predict_features {"rows": [{feature: value, ...}]}: what-if scores of raw feature rows."""
        stages = request.scope.get(SCOPE_KEY, NO_STAGES)
        scorer, requests = self._served()
        body = await request.body()
        stages.restart()
        rows = requests.feature_rows(body)
        stages.mark("parse")
        return _json(scorer.predict_rows(rows, stages.mark), stages)

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

def _json(payload: dict, stages) -> Response:
    body = orjson.dumps(payload)
    stages.mark("encode")
    return Response(body, media_type="application/json")


# outermost first: the timing covers the others; the key is checked before a body is read
CustomerIntelService.add_asgi_middleware(ServerTimingMiddleware)
CustomerIntelService.add_asgi_middleware(ApiKeyMiddleware)
CustomerIntelService.add_asgi_middleware(BodyLimitMiddleware)
