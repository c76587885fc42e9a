"""Where each artifact lives under the data directory. Nothing is created at import time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @property
    def dvc_repo(self) -> Path:
        """A DVC repository (no git) that versions the raw tables."""
        return self.root / "versioned"

    @property
    def raw(self) -> Path:
        return self.dvc_repo / "raw"

    @property
    def clean(self) -> Path:
        """Raw tables that passed validation; the features read these."""
        return self.root / "clean"

    @property
    def quarantine(self) -> Path:
        """Rejected raw rows, each with its `quarantine_reason`."""
        return self.root / "quarantine"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def offline(self) -> Path:
        return self.root / "offline"

    @property
    def features_file(self) -> Path:
        return self.offline / "customer_features.parquet"

    @property
    def labels_file(self) -> Path:
        return self.offline / "customer_labels.parquet"

    @property
    def ground_truth_file(self) -> Path:
        """True scores per (customer, snapshot) when the data is generated; never a feature."""
        return self.offline / "ground_truth.parquet"

    @property
    def feast(self) -> Path:
        return self.root / "feast"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id
