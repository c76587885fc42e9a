"""The straightforward serving app benchmarks/serve_load.py compares against: FastAPI, and per request
Feast's `store.get_online_features` (feature service, stock SDK) + the torch model.

    CUSTINTEL_PARAMS=params.yaml BASELINE_MODEL_DIR=<run>/model uvicorn benchmarks.serve_baseline:app
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from custintel import feature_store
from custintel.config import load_settings
from serving.timing import ServerTimingMiddleware
from training.predictor import Predictor

app = FastAPI(title="baseline: Feast SDK + torch per request")
app.add_middleware(ServerTimingMiddleware)  # its total in a Server-Timing header, as the custintel server
_settings = load_settings(os.environ.get("CUSTINTEL_PARAMS"))
_store = feature_store.open_store(_settings)
_service = feature_store.feature_service(_store)
_predictor = Predictor.load(Path(os.environ["BASELINE_MODEL_DIR"]))


class PredictRequest(BaseModel):
    customer_ids: list[int]


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    entity_rows = [{"customer_id": i} for i in request.customer_ids]
    rows = _store.get_online_features(features=_service, entity_rows=entity_rows).to_dict()
    frame = pd.DataFrame(rows)
    names = _predictor.feature_names
    found = frame[names].notna().any(axis=1).to_numpy()
    churn, spend = _predictor.predict_arrays(frame[found]) if found.any() else ([], [])
    scores = iter(zip(churn, spend, strict=True))
    predictions = []
    for customer_id, known in zip(request.customer_ids, found, strict=True):
        if known:
            c, s = next(scores)
            predictions.append({"customer_id": customer_id, "found": True, "churn_probability": float(c),
                                "predicted_spend": float(s)})
        else:
            predictions.append({"customer_id": customer_id, "found": False})
    return {"predictions": predictions}


@app.get("/readyz")
def ready() -> str:
    return "ok"
