"""Catalogue of the raw-data versions a data directory has held: each version's `.dvc` pointer is
kept under versioned/versions/, with what produced it, so any version can be checked out again
(`versioning.revision` in params.yaml) and a run on it reproduced.

    custintel data-versions
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from custintel.data import versioning
from custintel.errors import UserError

CATALOGUE = "versions.json"
POINTERS = "versions"


def _load(root: Path) -> list[dict]:
    path = root / CATALOGUE
    return json.loads(path.read_text()) if path.is_file() else []


def record(root: Path, origin: dict, counts: dict[str, int]) -> str:
    """Catalogue the version `raw.dvc` points at now, with its origin (generator settings or import)."""
    version = versioning.data_version(root)
    assert version is not None
    (root / POINTERS).mkdir(exist_ok=True)
    shutil.copy2(root / "raw.dvc", root / POINTERS / f"{version}.dvc")
    entries = [e for e in _load(root) if e["version"] != version]
    entries.append({"version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "origin": origin, "counts": counts})
    (root / CATALOGUE).write_text(json.dumps(entries, indent=2, default=str))
    return version


def list_versions(root: Path) -> list[dict]:
    current = versioning.data_version(root)
    return [{**e, "current": e["version"] == current} for e in _load(root)]


def find_by_origin(root: Path, origin: dict) -> str | None:
    """The newest catalogued version produced by exactly `origin`, if any."""
    wanted = json.loads(json.dumps(origin, default=str))  # compare as stored
    matches = [e["version"] for e in _load(root) if e["origin"] == wanted]
    return matches[-1] if matches else None


def resolve(root: Path, revision: str) -> str:
    """A full version from a version or a unique prefix of one."""
    known = [e["version"] for e in _load(root)]
    hits = [v for v in known if v.startswith(revision)]
    if len(hits) != 1:
        listing = ", ".join(v[:12] for v in known) or "none yet"
        what = "matches no" if not hits else "is ambiguous among the"
        raise UserError(f"versioning.revision {revision!r} {what} catalogued data versions ({listing}); "
                        "run `custintel data-versions` and use one of them.")
    return hits[0]


def checkout(root: Path, version: str) -> str:
    """Point raw.dvc at a catalogued version and `dvc pull` it into the working copy."""
    shutil.copy2(root / POINTERS / f"{version}.dvc", root / "raw.dvc")
    return versioning.pull(root)
