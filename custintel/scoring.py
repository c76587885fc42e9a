"""Online scoring: Feast online features -> champion model -> one answer per customer id.

The BentoML service only calls `OnlineScorer.predict`; features come from the same Feast
feature service that built the training set, and the model's own fitted scaler transforms them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from custintel import feature_store, registry
from custintel.config import Settings
from custintel.errors import UserError
from custintel.paths import DataPaths


def _unmarked(stage: str) -> None:
    """The default `mark`: no timing."""


@dataclass
class OnlineScorer:
    store: object
    predictor: object
    model_tag: str
    tiers: object = None  # training.tiers.ValueTiers fitted with the model
    segmenter: object = None  # training.segments.Segmenter fitted with the model
    profiles: list | None = None  # segment profiles written at training
    as_of: datetime | None = None  # read time for the TTL check; the end of history for historical data
    _segment_positions: object = None  # where the segmenter's features are among the model's

    @classmethod
    def from_settings(cls, settings: Settings, model_tag: str | None = None) -> OnlineScorer:
        from training.predictor import Predictor

        tag = model_tag or registry.champion_tag(DataPaths(settings.data_dir))
        if tag is None:
            raise UserError("No champion model yet: run `custintel retrain` before serving.")
        from training.segments import Segmenter
        from training.tiers import ValueTiers

        model_dir = registry.verified_model_path(tag)  # refuses tampered artifacts
        store, predictor = feature_store.open_store(settings), Predictor.load(model_dir).freeze()
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

    def check_store(self) -> str | None:
        """None when the online store answers a read, else why not (readiness probe)."""
        from custintel.online_rows import OnlineStoreUnavailable, read

        try:
            read(self.store, [0], self.predictor.feature_names, as_of=self.as_of)
        except OnlineStoreUnavailable as exc:
            return str(exc)
        return None

    def _score(self, features: pd.DataFrame, mark=None) -> list[dict]:
        """Churn probability, predicted spend, value tier and segment of each feature row."""
        names = self.predictor.feature_names
        return self._score_array(features[names].to_numpy(dtype=np.float64, na_value=np.nan), mark)

    def _score_array(self, x: np.ndarray, mark=None) -> list[dict]:
        """_score of a float64 matrix of the model's features (NaN = missing); `mark(stage)`
        (serving.timing.Stages.mark) is called after the transform, model, segment and assemble stages."""
        mark = mark or _unmarked
        if len(x) == 0:
            return []
        transformed = self.predictor.scaler.transform_array(x)
        mark("transform")
        churn, spend = self.predictor.predict_transformed(transformed)
        mark("model")
        tiers = self.tiers.assign(spend) if self.tiers is not None else None
        segment_ids = None
        if self.segmenter is not None:
            if self._segment_positions is None:
                self._segment_positions = self.segmenter.positions_in(self.predictor.feature_names)
            segment_ids = self.segmenter.assign_array(x, self._segment_positions)
        mark("segment")
        answers = []
        for i in range(len(x)):
            answer = {"churn_probability": round(float(churn[i]), 6),
                      "predicted_spend": round(float(spend[i]), 2)}
            if tiers is not None:
                answer["value_tier"] = str(tiers[i])
            if segment_ids is not None:
                segment = int(segment_ids[i])
                answer.update(segment_id=segment, segment_name=self.segmenter.names[segment])
            answers.append(answer)
        return answers

    def predict(self, customer_ids: list[int], mark=None) -> dict:
        """One entry per id, in order: scores with the model version, the features' event time and
        `stale` (older than the view's TTL); `found: false` for customers the store does not hold.
        Raises custintel.online_rows.OnlineStoreUnavailable when the store cannot be read.
        `mark(stage)` (serving.timing.Stages.mark) is called after each stage: fetch, then _score's."""
        from custintel.online_rows import read

        mark = mark or _unmarked
        rows = read(self.store, customer_ids, self.predictor.feature_names, as_of=self.as_of)
        mark("fetch")
        found = np.flatnonzero(rows.found)
        known = rows.values if len(found) == len(rows.values) else rows.values[found]
        scores = dict(zip(found.tolist(), self._score_array(known, mark), strict=True))
        stamps: dict[int, str] = {}  # a request's rows mostly share a few event times
        predictions = []
        for i, customer_id in enumerate(rows.ids.tolist()):
            if i not in scores:
                predictions.append({"customer_id": int(customer_id), "found": False,
                                    "error": "customer not found in the online feature store"})
                continue
            seconds = int(rows.feature_ts[i])
            stamp = stamps.get(seconds)
            if stamp is None:
                stamp = stamps[seconds] = datetime.fromtimestamp(seconds, UTC).isoformat()
            answer = {"customer_id": int(customer_id), "found": True, **scores[i],
                      "model_version": self.model_tag, "feature_timestamp": stamp,
                      "stale": bool(rows.stale[i])}
            if rows.stale[i]:
                answer["warning"] = ("online features are older than their TTL: re-materialize "
                                     "(`custintel materialize`)")
            predictions.append(answer)
        mark("assemble")
        return {"model_version": self.model_tag, "predictions": predictions}

    def predict_rows(self, features: pd.DataFrame, mark=None) -> dict:
        """What-if scoring of raw feature rows (columns = the model's features)."""
        scored = self._score(features[self.predictor.feature_names], mark)
        return {"model_version": self.model_tag,
                "predictions": [{"row": i, **answer, "model_version": self.model_tag}
                                for i, answer in enumerate(scored)]}
