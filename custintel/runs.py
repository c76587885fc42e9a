"""Run directories: one per training run, indexed by the inputs that determine the model so an
unchanged retrain reuses its run instead of training again."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from custintel.config import Settings
from custintel.errors import UserError
from custintel.paths import DataPaths

TRAINING_CODE_VERSION = 6  # bump when training code changes what an unchanged input produces


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def training_key(settings: Settings, data_version: str) -> str:
    payload = {"data_version": data_version, "features": settings.features.model_dump(mode="json"),
               "train": settings.train.model_dump(mode="json"), "seed": settings.base.seed,
               "code": TRAINING_CODE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _index_file(paths: DataPaths) -> Path:
    return paths.runs / "index.json"


def _read_index(paths: DataPaths) -> dict[str, str]:
    return json.loads(_index_file(paths).read_text()) if _index_file(paths).is_file() else {}


def find_run(paths: DataPaths, key: str) -> str | None:
    run_id = _read_index(paths).get(key)
    if run_id and (paths.run_dir(run_id) / "metrics.json").is_file():
        return run_id
    return None


def _started_file(paths: DataPaths) -> Path:
    return paths.runs / "started.json"


def start_run(paths: DataPaths, key: str, resume: bool = True) -> str:
    """The run id for training inputs `key` that has no recorded run yet: with `resume`, the one an
    earlier, failed attempt started (so a rerun continues in its directory and reuses its finished
    steps), else a new one."""
    started = json.loads(_started_file(paths).read_text()) if _started_file(paths).is_file() else {}
    run_id = started.get(key)
    if resume and run_id and paths.run_dir(run_id).is_dir():
        return run_id
    run_id = new_run_id()
    while paths.run_dir(run_id).exists():  # two runs within one second
        run_id = f"{run_id[:15]}-{int(run_id[16:] or 1) + 1}"
    started[key] = run_id
    paths.run_dir(run_id).mkdir(parents=True, exist_ok=True)
    _atomic_write(_started_file(paths), json.dumps(started, indent=2))
    return run_id


def record_run(paths: DataPaths, key: str, run_id: str) -> None:
    """Index the finished run under its training key (and mark it the latest)."""
    index = _read_index(paths)
    index[key] = run_id
    paths.runs.mkdir(parents=True, exist_ok=True)
    _atomic_write(_index_file(paths), json.dumps(index, indent=2))
    if _started_file(paths).is_file():
        started = json.loads(_started_file(paths).read_text())
        if started.pop(key, None) is not None:
            _atomic_write(_started_file(paths), json.dumps(started, indent=2))
    (paths.runs / "LATEST").write_text(run_id)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def resolve_run(paths: DataPaths, run_id: str | None) -> Path:
    """The directory of `run_id`, or of the latest run when None."""
    if run_id is None:
        latest = paths.runs / "LATEST"
        if not latest.is_file():
            raise UserError("No training run yet: run `custintel train` (or `custintel retrain`) first.")
        run_id = latest.read_text().strip()
    run_dir = paths.run_dir(run_id)
    if not run_dir.is_dir():
        raise UserError(f"Run {run_id!r} not found under {paths.runs}; pass an existing --run-id.")
    return run_dir


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing: run the step that writes it first.")
    return json.loads(path.read_text())
