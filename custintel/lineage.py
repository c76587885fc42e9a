"""What a registered model came from: data revision, Feast registry version, git commit, Optuna
study and trial, params and holdout metrics. Stored as the BentoML model's metadata at
registration and served at the server's GET /metadata."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from custintel.paths import DataPaths
from custintel.runs import read_json


def feast_registry_version(paths: DataPaths) -> dict | None:
    """The Feast registry's own version id and last update, and a hash of the registry file."""
    path = paths.feast / "registry.db"
    if not path.is_file():
        return None
    from feast.protos.feast.core.Registry_pb2 import Registry

    raw = path.read_bytes()
    proto = Registry()
    proto.ParseFromString(raw)
    return {"version_id": proto.version_id, "last_updated": proto.last_updated.ToDatetime(UTC).isoformat(),
            "sha256": hashlib.sha256(raw).hexdigest()[:16]}


def best_trial(tuning: dict) -> int | None:
    """Number of the completed trial whose value is the study's best."""
    for trial in tuning.get("trials", []):
        if trial["state"] == "COMPLETE" and trial["value"] == tuning["best_value"]:
            return trial["number"]
    return None


def run_lineage(paths: DataPaths, run_dir: Path, parent_champion: str | None) -> dict:
    from custintel.model_card import git_commit

    metrics = read_json(run_dir / "metrics.json")
    spec = read_json(run_dir / "model" / "model.json")
    tuning = read_json(run_dir / "tuning.json")
    return {
        "run_id": run_dir.name,
        "data_version": metrics["data_version"],
        "holdout_snapshot": metrics["holdout_snapshot"],
        "metrics": metrics["model"],
        "feature_service": spec["feature_service"],
        "features": spec["scaler"]["feature_names"],
        "params": spec["params"],
        "epochs": spec.get("epochs"),
        "git_commit": git_commit(),
        "optuna": {"study": tuning["study"], "trial": best_trial(tuning), "best_value": tuning["best_value"],
                   "storage": tuning["storage"]},
        "feast_registry": feast_registry_version(paths),
        "parent_champion": parent_champion,
        "registered_at": datetime.now(UTC).isoformat(),
    }
