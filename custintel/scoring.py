"""Online scoring: Feast online features -> champion model -> one answer per customer id.

The BentoML service only calls `OnlineScorer.predict`; features come from the same Feast
feature service that built the training set, and the model's own fitted scaler transforms them.
"""

from __future__ import annotations

import json
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
    tiers: object = None  # training.tiers.ValueTiers fitted with the model
    segmenter: object = None  # training.segments.Segmenter fitted with the model
    profiles: list | None = None  # segment profiles written at training
    as_of: datetime | None = None  # read time for the TTL check; the end of history for historical data

    @classmethod
    def from_settings(cls, settings: Settings, model_tag: str | None = None) -> OnlineScorer:
        from training.predictor import Predictor

        tag = model_tag or registry.champion_tag(DataPaths(settings.data_dir))
        if tag is None:
            raise UserError("No champion model yet: run `custintel retrain` before serving.")
        from training.segments import Segmenter
        from training.tiers import ValueTiers

        model_dir = registry.model_path(tag)
        store, predictor = feature_store.open_store(settings), Predictor.load(model_dir)
        served = feature_store.service_feature_names(store)
        lacking = [name for name in predictor.feature_names if name not in served]
        if lacking:
            raise UserError(f"Model {tag} needs features {lacking} that the feature service no longer serves "
                            f"(it serves {served}); the data changed under the model. Retrain with "
                            "`custintel retrain`, or roll back to a model trained on this data.")
        profiles_file = model_dir / "segment_profiles.json"
        profiles = json.loads(profiles_file.read_text())["segments"] if profiles_file.is_file() else None
        return cls(store=store, predictor=predictor, model_tag=tag, tiers=ValueTiers.load(model_dir),
                   segmenter=Segmenter.load(model_dir), profiles=profiles,
                   as_of=settings.snapshot_dates()[-1])

    def segments(self) -> dict:
        """The served model's segment profiles (id, name, size, churn risk, spend, z-scores, action)."""
        return {"model_version": self.model_tag, "segments": self.profiles or []}

    def predict(self, customer_ids: list[int]) -> dict:
        names = self.predictor.feature_names
        rows = feature_store.online_features(self.store, customer_ids, names, as_of=self.as_of)
        found = rows[names].notna().any(axis=1).to_numpy()
        churn = np.full(len(rows), np.nan)
        spend = np.full(len(rows), np.nan)
        tiers = np.full(len(rows), None, dtype=object)
        segment_ids = np.full(len(rows), -1)
        if found.any():
            churn[found], spend[found] = self.predictor.predict_arrays(rows[found])
            if self.tiers is not None:
                tiers[found] = self.tiers.assign(spend[found])
            if self.segmenter is not None:
                segment_ids[found] = self.segmenter.assign(rows[found])
        predictions = []
        for i, customer_id in enumerate(rows[ENTITY_KEY].tolist()):
            if found[i]:
                answer = {"customer_id": int(customer_id), "found": True,
                          "churn_probability": round(float(churn[i]), 6),
                          "predicted_spend": round(float(spend[i]), 2)}
                if tiers[i] is not None:
                    answer["value_tier"] = tiers[i]
                if segment_ids[i] >= 0:
                    answer.update(segment_id=int(segment_ids[i]),
                                  segment_name=self.segmenter.names[int(segment_ids[i])])
                predictions.append(answer)
            else:
                predictions.append({"customer_id": int(customer_id), "found": False,
                                    "error": "customer not found in the online feature store"})
        return {"model_version": self.model_tag, "predictions": predictions}
