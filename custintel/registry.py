"""Model registry: models live in the BentoML model store; a champion pointer (with history, for
rollback) lives in <data_dir>/registry/champion.json.

BENTOML_HOME must point into the data dir before bentoml is imported (see custintel.runtime).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from custintel.errors import UserError
from custintel.paths import DataPaths

MODEL_NAME = "customer_model"


def save_to_store(model_dir: Path, metadata: dict) -> str:
    """Copy a saved predictor directory into the BentoML model store; returns the tag."""
    import bentoml

    labels = {"data_version": str(metadata.get("data_version", ""))[:16]}
    with bentoml.models.create(name=MODEL_NAME, metadata=metadata, labels=labels) as ref:
        for item in model_dir.iterdir():
            shutil.copy2(item, Path(ref.path) / item.name)
    return str(ref.tag)


def model_path(tag: str) -> Path:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(tag).path)
    except NotFound:
        raise UserError(f"Model {tag} is not in the BentoML store; list models with `bentoml models list`.") \
            from None


def _pointer(paths: DataPaths) -> Path:
    return paths.registry / "champion.json"


def read_champion(paths: DataPaths) -> dict:
    path = _pointer(paths)
    return json.loads(path.read_text()) if path.is_file() else {"champion": None, "history": []}


def champion_tag(paths: DataPaths) -> str | None:
    return read_champion(paths)["champion"]


def set_champion(paths: DataPaths, tag: str, reason: str) -> dict:
    state = read_champion(paths)
    state["history"].append({"tag": tag, "at": datetime.now(UTC).isoformat(), "reason": reason,
                             "previous": state["champion"]})
    state["champion"] = tag
    paths.registry.mkdir(parents=True, exist_ok=True)
    _pointer(paths).write_text(json.dumps(state, indent=2))
    return state


def rollback(paths: DataPaths) -> str:
    """Make the champion before the current one champion again; returns its tag."""
    state = read_champion(paths)
    previous = state["history"][-1]["previous"] if state["history"] else None
    if previous is None:
        raise UserError("There is no earlier champion to roll back to.")
    set_champion(paths, previous, f"rollback from {state['champion']}")
    return previous
