"""Feature scaling with the scikit-learn fit/transform contract; its state is saved with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

# How raw values are compressed before standardisation. "signed_log1p" (sign(x) log1p(|x|)) keeps
# negative features (30-day trends, review sentiment and embeddings) instead of clipping them to
# zero as "clip_log1p" did; models saved before the key existed were fitted with "clip_log1p" and
# keep it, so a saved model always scores with the transform it was trained with.
SIGNED_LOG1P, CLIP_LOG1P = "signed_log1p", "clip_log1p"


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|): the compression of heavy-tailed counts and spends that keeps the sign
    (the model's scaler and the segmenter's space both use it)."""
    return np.sign(x) * np.log1p(np.abs(x))


class FeatureScaler:
    """Signed log1p of every feature (heavy-tailed counts and spends), then standardisation with
    train-only statistics."""

    def __init__(self, feature_names: list[str], transform: str = SIGNED_LOG1P) -> None:
        if transform not in (SIGNED_LOG1P, CLIP_LOG1P):
            raise ValueError(f"unknown scaler transform {transform!r}")
        self.feature_names = list(feature_names)
        self.transform_name = transform

    def fit(self, frame: pd.DataFrame) -> FeatureScaler:
        x = self._log(frame)
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0) + 1e-6
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return ((self._log(frame) - self.mean_) / self.std_).astype(np.float32)

    def transform_array(self, x: np.ndarray) -> np.ndarray:
        """transform of a float64 matrix whose columns are `feature_names` (NaN = missing), without
        pandas (the online serving path)."""
        return ((self._compress(x) - self.mean_) / self.std_).astype(np.float32)

    def _log(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise KeyError(f"features missing from input: {missing}")
        return self._compress(frame[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan))

    def _compress(self, x: np.ndarray) -> np.ndarray:
        """The one implementation of the value compression (missing values count as 0); the batch
        scorer's torch block transform (custintel.snapshot_scoring) is tested equal to it."""
        x = np.nan_to_num(x, nan=0.0)
        if self.transform_name == CLIP_LOG1P:
            return np.log1p(np.clip(x, 0, None))
        return signed_log1p(x)

    def to_dict(self) -> dict:
        return {"feature_names": self.feature_names, "transform": self.transform_name,
                "mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> FeatureScaler:
        scaler = cls(state["feature_names"], state.get("transform", CLIP_LOG1P))
        scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
        scaler.std_ = np.asarray(state["std"], dtype=np.float64)
        return scaler
