"""A trained model ready to score feature rows: network + fitted scaler. Used by evaluation,
promotion and serving, so every path scores with the same code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training.network import MultiTaskNet, NetConfig, ziln_expected
from training.scaler import FeatureScaler

WEIGHTS_FILE = "weights.pt"
SPEC_FILE = "model.json"
WEIGHTS_HASH_KEY = "weights_sha256"  # recorded in model.json at save, checked at load


@dataclass
class Predictor:
    net: MultiTaskNet
    net_config: NetConfig
    scaler: FeatureScaler

    @property
    def feature_names(self) -> list[str]:
        return self.scaler.feature_names

    def predict_arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(churn probability, expected spend in the horizon) per row of `frame`."""
        return self.predict_transformed(self.scaler.transform(frame))

    def predict_transformed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """predict_arrays of rows already transformed by `self.scaler` (float32, feature order)."""
        churn, spend = self.predict_scaled(torch.from_numpy(x))
        return churn.numpy(), spend.numpy()

    @torch.inference_mode()
    def predict_scaled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(churn probability, expected spend) of float32 rows already transformed by `scaler`."""
        if self.net.training:  # eval() walks every submodule: only when needed (per serving request)
            self.net.eval()
        churn_logit, value_out = self.net(x)
        return torch.sigmoid(churn_logit), ziln_expected(value_out)

    def save(self, directory: Path, extra: dict | None = None) -> None:
        from custintel.model_integrity import sha256_file

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        spec = {"net": self.net_config.to_dict(), "scaler": self.scaler.to_dict(), **(extra or {}),
                WEIGHTS_HASH_KEY: sha256_file(directory / WEIGHTS_FILE)}
        (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, default=str))

    @classmethod
    def load(cls, directory: Path) -> Predictor:
        """Load a saved predictor; weights whose SHA-256 differs from the one model.json recorded at
        save are refused (custintel.errors.UserError naming the file)."""
        from custintel.model_integrity import check_file

        spec = json.loads((directory / SPEC_FILE).read_text())
        if WEIGHTS_HASH_KEY in spec:  # models saved before hashes were recorded have none
            check_file(directory / WEIGHTS_FILE, spec[WEIGHTS_HASH_KEY], str(directory))
        cfg = NetConfig(**spec["net"])
        net = MultiTaskNet(cfg)
        # weights_only: never unpickle arbitrary objects from a model artifact
        net.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        net.eval()
        return cls(net=net, net_config=cfg, scaler=FeatureScaler.from_dict(spec["scaler"]))
