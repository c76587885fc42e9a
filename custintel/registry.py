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
    """Copy a saved predictor directory into the BentoML model store, with the SHA-256 of each of
    its files in the metadata (checked by `verified_model_path` before serving); returns the tag."""
    import bentoml

    from custintel.model_integrity import METADATA_KEY, directory_hashes

    metadata = {**metadata, METADATA_KEY: directory_hashes(model_dir)}
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


def verified_model_path(tag: str) -> Path:
    """`model_path(tag)` after checking every file against the SHA-256 recorded at registration
    (UserError naming a tampered or missing file). Models registered before hashes were recorded
    are loaded with a warning."""
    import logging

    import bentoml

    from custintel.model_integrity import METADATA_KEY, verify_directory

    path = model_path(tag)
    expected = bentoml.models.get(tag).info.metadata.get(METADATA_KEY)
    if not expected:
        logging.getLogger(__name__).warning("model %s has no recorded artifact hashes (registered before "
                                            "they were); serving it unchecked", tag)
    else:
        verify_directory(path, expected, tag)
    return path


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
