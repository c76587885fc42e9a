"""Catalogue of the raw-data versions a data directory has held: each version's `.dvc` pointer is
kept under versioned/versions/, with what produced it, so any version can be checked out again
(`versioning.revision` in params.yaml) and a run on it reproduced.

    custintel data-versions
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from custintel.data import versioning
from custintel.errors import UserError

CATALOGUE = "versions.json"
POINTERS = "versions"
# Not `.dvc`: DVC reads every *.dvc file of the repository as a stage, and two copies declaring the
# same output make `dvc add` fail from the third version on.
POINTER_SUFFIX = ".pointer"


def _pointer(root: Path, version: str) -> Path:
    return root / POINTERS / f"{version}{POINTER_SUFFIX}"


def migrate(root: Path) -> None:
    """Rename pointers written as *.dvc by earlier releases (call before any `dvc add`)."""
    for legacy in (root / POINTERS).glob("*.dvc"):
        legacy.rename(legacy.with_suffix(POINTER_SUFFIX))


def _load(root: Path) -> list[dict]:
    path = root / CATALOGUE
    return json.loads(path.read_text()) if path.is_file() else []


def record(root: Path, origin: dict, counts: dict[str, int], name: str | None = None) -> str:
    """Catalogue the version `raw.dvc` points at now, with its origin (generator settings or import).
    A new version is also tagged `name` (with -2, -3... when another version holds that name)."""
    version = versioning.data_version(root)
    assert version is not None
    (root / POINTERS).mkdir(exist_ok=True)
    shutil.copy2(root / "raw.dvc", _pointer(root, version))
    entries = [e for e in _load(root) if e["version"] != version]
    known = next((e for e in _load(root) if e["version"] == version), None)
    tags = known.get("tags", []) if known else []
    if known is None and name:
        taken = {t for e in entries for t in e.get("tags", [])}
        tags = [next(n for n in (name, *(f"{name}-{k}" for k in range(2, 10_000))) if n not in taken)]
    entries.append({"version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "origin": origin, "counts": counts, "tags": tags})
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


def add_tag(root: Path, tag: str, revision: str | None = None) -> str:
    """Name a catalogued version (default: the current one); a tag names one version at a time,
    so tagging another version moves it. Returns the tagged version."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", tag) or re.fullmatch(r"[0-9a-f]+", tag):
        raise UserError(f"Tag {tag!r} is not usable: use letters, digits, dots, dashes or underscores, "
                        "and not a hex string (it would read as a version hash).")
    version = resolve(root, revision) if revision else versioning.data_version(root)
    entries = _load(root)
    if version is None or version not in {e["version"] for e in entries}:
        raise UserError("No catalogued data version to tag yet: run `custintel ingest` first.")
    for entry in entries:
        tags = [t for t in entry.get("tags", []) if t != tag]
        entry["tags"] = [*tags, tag] if entry["version"] == version else tags
    (root / CATALOGUE).write_text(json.dumps(entries, indent=2, default=str))
    return version


def resolve(root: Path, revision: str) -> str:
    """A full version from a tag, a version or a unique prefix of one."""
    entries = _load(root)
    tagged = [e["version"] for e in entries if revision in e.get("tags", [])]
    if tagged:
        return tagged[0]
    known = [e["version"] for e in entries]
    hits = [v for v in known if v.startswith(revision)]
    if len(hits) != 1:
        listing = ", ".join(v[:12] + "".join(f" ({t})" for t in e.get("tags", []))
                            for v, e in zip(known, entries, strict=True)) or "none yet"
        what = "matches no" if not hits else "is ambiguous among the"
        raise UserError(f"versioning.revision {revision!r} {what} catalogued data versions ({listing}); "
                        "run `custintel data-versions` and use one of them.")
    return hits[0]


def checkout(root: Path, version: str) -> str:
    """Point raw.dvc at a catalogued version and `dvc pull` it into the working copy (emptied first,
    so no table of another version, e.g. events next to an imported log, lingers)."""
    shutil.copy2(_pointer(root, version), root / "raw.dvc")
    shutil.rmtree(root / "raw", ignore_errors=True)
    return versioning.pull(root)
