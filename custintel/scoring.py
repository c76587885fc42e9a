"""Online scoring: Feast online features -> champion model -> one answer per customer id.

The BentoML service only calls `OnlineScorer.predict`; features come from the same Feast
feature service that built the training set, and the model's own fitted scaler transforms them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from custintel import feature_store, registry
from custintel.config import Settings
from custintel.errors import UserError
from custintel.features.schema import ENTITY_KEY
from custintel.paths import DataPaths


@dataclass
class OnlineScorer:
    store: object
    predictor: object
    model_tag: str
    as_of: datetime | None = None  # read time for the TTL check; the end of history for historical data

    @classmethod
    def from_settings(cls, settings: Settings, model_tag: str | None = None) -> OnlineScorer:
        from training.predictor import Predictor

        tag = model_tag or registry.champion_tag(DataPaths(settings.data_dir))
        if tag is None:
            raise UserError("No champion model yet: run `custintel retrain` before serving.")
        store, predictor = feature_store.open_store(settings), Predictor.load(registry.model_path(tag))
        served = feature_store.service_feature_names(store)
        lacking = [name for name in predictor.feature_names if name not in served]
        if lacking:
            raise UserError(f"Model {tag} needs features {lacking} that the feature service no longer serves "
                            f"(it serves {served}); the data changed under the model. Retrain with "
                            "`custintel retrain`, or roll back to a model trained on this data.")
        return cls(store=store, predictor=predictor, model_tag=tag, as_of=settings.snapshot_dates()[-1])

    def predict(self, customer_ids: list[int]) -> dict:
        names = self.predictor.feature_names
        rows = feature_store.online_features(self.store, customer_ids, names, as_of=self.as_of)
        found = rows[names].notna().any(axis=1).to_numpy()
        churn = np.full(len(rows), np.nan)
        spend = np.full(len(rows), np.nan)
        if found.any():
            churn[found], spend[found] = self.predictor.predict_arrays(rows[found])
        predictions = []
        for i, customer_id in enumerate(rows[ENTITY_KEY].tolist()):
            if found[i]:
                predictions.append({"customer_id": int(customer_id), "found": True,
                                    "churn_probability": round(float(churn[i]), 6),
                                    "predicted_spend": round(float(spend[i]), 2)})
            else:
                predictions.append({"customer_id": int(customer_id), "found": False,
                                    "error": "customer not found in the online feature store"})
        return {"model_version": self.model_tag, "predictions": predictions}
