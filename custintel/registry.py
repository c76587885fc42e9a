"""Model registry: every model version lives in the BentoML model store with its metadata
(metrics, data revision, params, git commit, parent champion); the champion pointer
<data_dir>/registry/champion.json names the served version; the promotion ledger
(custintel.ledger) records every change.

- The pointer is replaced atomically (temp file + os.replace): a reader sees the old or the new
  pointer, never half of one.
- Every change of champion holds an exclusive lock on <data_dir>/registry/.lock (fcntl.flock),
  so concurrent promotions and rollbacks run one after the other, each seeing the last one's result.

BENTOML_HOME must point into the data dir before bentoml is imported (see custintel.runtime).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from custintel import ledger
from custintel.errors import UserError
from custintel.paths import DataPaths

MODEL_NAME = "customer_model"
LOCK_FILE = ".lock"


# --- the BentoML model store -------------------------------------------------------------------

def save_to_store(model_dir: Path, metadata: dict, extra_files: list[Path] = ()) -> str:
    """Copy a saved predictor directory (and `extra_files`, e.g. the model card) into the BentoML
    model store, with the SHA-256 of each predictor file in the metadata (checked by
    `verified_model_path` before serving); returns the new version's tag. Unknown (None) metadata
    values are left out: the store accepts only basic types."""
    import bentoml

    from custintel.model_integrity import METADATA_KEY, directory_hashes, sha256_file

    hashes = {**directory_hashes(model_dir), **{Path(f).name: sha256_file(Path(f)) for f in extra_files}}
    metadata = {**_without_none(metadata), METADATA_KEY: hashes}
    labels = {"data_version": str(metadata.get("data_version", ""))[:16],
              "run_id": str(metadata.get("run_id", ""))}
    with bentoml.models.create(name=MODEL_NAME, metadata=metadata, labels=labels) as ref:
        for item in [*model_dir.iterdir(), *extra_files]:
            shutil.copy2(item, Path(ref.path) / item.name)
    return str(ref.tag)


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value if v is not None]
    return value


def _get(tag: str):
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    try:
        return bentoml.models.get(tag)
    except (NotFound, BentoMLException, ValueError):
        raise UserError(f"Model {tag} is not in the BentoML store; list versions with "
                        "`custintel models list`.") from None


def model_path(tag: str) -> Path:
    return Path(_get(tag).path)


def model_metadata(tag: str) -> dict:
    """The version's stored metadata (lineage, metrics, params) plus its tag and creation time."""
    model = _get(tag)
    return {"tag": str(model.tag), "created_at": model.info.creation_time.isoformat(),
            **dict(model.info.metadata)}


def list_versions() -> list[dict]:
    """Every version of the model in the store, newest first."""
    import bentoml

    models = [m for m in bentoml.models.list(MODEL_NAME)]
    models.sort(key=lambda m: m.info.creation_time, reverse=True)
    return [{"tag": str(m.tag), "created_at": m.info.creation_time.isoformat(),
             **dict(m.info.metadata)} for m in models]


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


# --- the champion pointer ----------------------------------------------------------------------

def pointer_path(paths: DataPaths) -> Path:
    return paths.registry / "champion.json"


def read_champion(paths: DataPaths) -> dict:
    path = pointer_path(paths)
    return json.loads(path.read_text()) if path.is_file() else {"champion": None, "version": 0}


def champion_tag(paths: DataPaths) -> str | None:
    return read_champion(paths)["champion"]


def _write_pointer(paths: DataPaths, state: dict) -> None:
    """Write the pointer to a temp file in the same directory, fsync it, then os.replace it."""
    paths.registry.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".champion.", suffix=".json", dir=paths.registry)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, pointer_path(paths))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def locked(paths: DataPaths) -> Iterator[None]:
    """Exclusive registry lock (blocks until free). Not re-entrant: take it once per change."""
    paths.registry.mkdir(parents=True, exist_ok=True)
    with open(paths.registry / LOCK_FILE, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- who triggered a change --------------------------------------------------------------------

def cli_actor(command: str) -> dict:
    return {"via": "cli", "user": _user(), "host": socket.gethostname(), "command": command}


def flow_actor() -> dict:
    """The running Prefect flow (id and name) when called inside one, else the local user."""
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except ImportError:
        run_id = None
    if not run_id:
        return {"via": "python", "user": _user(), "host": socket.gethostname()}
    return {"via": "prefect", "flow_run_id": str(run_id), "flow_run_name": flow_run.name,
            "user": _user(), "host": socket.gethostname()}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --- changes (the caller holds `locked(paths)`) ------------------------------------------------

def record(paths: DataPaths, event: str, tag: str, actor: dict, **details) -> dict:
    """Append a ledger entry; for a promotion or rollback also move the pointer to `tag`.
    Call with the registry lock held."""
    before = champion_tag(paths)
    changes = event in (*ledger.CHAMPION_EVENTS, "rollback")
    entry = ledger.append_entry(paths.registry, {
        "event": event, "tag": tag, "champion_before": before, "champion_after": tag if changes else before,
        "actor": actor, **details})
    if changes:
        _write_pointer(paths, {"champion": tag, "version": entry["seq"], "updated_at": entry["at"],
                               "event": event})
    return entry


def promote_by_hand(paths: DataPaths, tag: str, actor: dict, reason: str | None = None, **details) -> dict:
    """Make `tag` the champion without the gate (the caller checked it is in the store)."""
    with locked(paths):
        if champion_tag(paths) == tag:
            raise UserError(f"{tag} is already the champion.")
        return record(paths, "manual_promotion", tag, actor, reasons=[reason or "promoted by hand"],
                      **details)


def rollback(paths: DataPaths, actor: dict, reason: str | None = None) -> dict:
    """Make the champion before the current one (in the ledger) champion again; repeated
    rollbacks walk further back. Returns the ledger entry."""
    with locked(paths):
        history = ledger.champion_history(ledger.read_entries(paths.registry))
        if len(history) < 2:
            raise UserError("There is no earlier champion to roll back to "
                            f"(champion history: {history or 'empty'}); see `custintel models ledger`.")
        return record(paths, "rollback", history[-2], actor,
                      reasons=[reason or f"rollback from {history[-1]}"])


def ledger_entries(paths: DataPaths) -> list[dict]:
    return ledger.read_entries(paths.registry)

