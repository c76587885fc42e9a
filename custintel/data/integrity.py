"""Check a DVC checkout byte for byte before anything is computed from it.

DVC trusts a cache object whose size and mtime it has seen before, so bit rot in the local cache
(or a partial copy whose metadata looks unchanged) is checked out silently; a missing object
that the remote lacks too fails deep inside DVC. `verify_checkout` hashes every file of the
checked-out directory against the MD5 DVC recorded for it in the directory's manifest (the
`.dir` object) and raises one UserError naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from custintel.errors import UserError

CHUNK = 1 << 20


def md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cache_object(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object `md5` (a file, or a directory manifest ending in .dir)."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _fix(root: Path, objects: list[Path]) -> str:
    removal = " ".join(str(p) for p in objects)
    return (f"Fix: delete the bad cache object{'s' if len(objects) > 1 else ''} (rm -f {removal}) and run "
            f"`custintel ingest` (or `dvc pull --force` in {root}): the data is fetched again from the DVC "
            "remote. If the same error comes back, the remote copy is bad too: restore the remote from a "
            "backup or re-create this data version.")


def verify_checkout(root: Path, version: str, target: str = "raw") -> int:
    """Raise UserError unless every file of `root/target` has the MD5 recorded for data version
    `version` (a DVC directory hash, "<md5>.dir"). Returns the number of files checked."""
    manifest_file = cache_object(root, version)
    if not manifest_file.is_file():
        raise UserError(f"The DVC cache is partial: the manifest of data version {version} "
                        f"({manifest_file}) is missing, so {root / target} cannot be checked. "
                        + _fix(root, [manifest_file]))
    try:
        entries = json.loads(manifest_file.read_text())
        expected = {entry["relpath"]: entry["md5"] for entry in entries}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"The DVC cache is corrupted: the manifest of data version {version} "
                        f"({manifest_file}) is not valid JSON. " + _fix(root, [manifest_file])) from None
    workdir = root / target
    present = {p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file()} \
        if workdir.is_dir() else set()
    missing = sorted(set(expected) - present)
    if missing:
        raise UserError(f"The checkout of data version {version} is partial: {workdir / missing[0]} "
                        f"is missing ({len(missing)} of {len(expected)} files). "
                        + _fix(root, [cache_object(root, expected[m]) for m in missing]))
    for relpath, md5 in sorted(expected.items()):
        path = workdir / relpath
        actual = md5_file(path)
        if actual != md5:
            raise UserError(
                f"{path} does not match data version {version}: its MD5 is {actual}, DVC recorded {md5} "
                f"({path.stat().st_size} bytes); the DVC cache object {cache_object(root, md5)} is corrupted "
                "or truncated. " + _fix(root, [cache_object(root, md5)]))
    return len(expected)
