"""DVC versioning of the raw tables, in a git-less DVC repository inside the data directory.

    custintel ingest       # generate if needed, `dvc add` + `dvc push`, then `dvc pull`

The data version is the DVC hash of the raw directory, recorded in every run's metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from custintel.errors import UserError

REMOTE_NAME = "storage"


def _repo(root: Path):
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.repo import Repo

    if not (root / ".dvc").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        Repo.init(str(root), no_scm=True)
    return Repo(str(root))


def configure_remote(root: Path, remote_url: str) -> None:
    """Point the repository's default remote at `remote_url` (a local directory by default)."""
    if "://" not in remote_url:
        Path(remote_url).mkdir(parents=True, exist_ok=True)
    repo = _repo(root)
    with repo.config.edit() as conf:
        conf["remote"][REMOTE_NAME] = {"url": remote_url}
        conf["core"]["remote"] = REMOTE_NAME
    repo.close()


def data_version(root: Path, target: str = "raw") -> str | None:
    """The DVC hash of `target` as recorded in `<target>.dvc`, or None when it is not tracked."""
    dvc_file = root / f"{target}.dvc"
    if not dvc_file.is_file():
        return None
    meta = yaml.safe_load(dvc_file.read_text())
    return meta["outs"][0]["md5"]


def track_and_push(root: Path, target: str = "raw") -> str:
    """`dvc add` the target directory and `dvc push` it to the default remote; returns its hash."""
    repo = _repo(root)
    try:
        repo.add(str(root / target))
        repo.push()
    finally:
        repo.close()
    version = data_version(root, target)
    assert version is not None
    return version


def pull(root: Path, target: str = "raw") -> str:
    """`dvc pull`: fetch the tracked version from the remote and check it out, then check every file's
    MD5 against the version's manifest (custintel.data.integrity); returns its hash."""
    from dvc.exceptions import DvcException

    from custintel.data.integrity import verify_checkout

    version = data_version(root, target)
    if version is None:
        raise FileNotFoundError(f"{root / (target + '.dvc')} is missing: nothing is versioned yet")
    repo = _repo(root)
    try:
        repo.pull(targets=[str(root / f"{target}.dvc")], force=True)
    except DvcException as exc:
        raise UserError(
            f"`dvc pull` of data version {version} into {root / target} failed: {exc}. The DVC cache and the "
            "remote lack part of this version (a partial cache or push). Fix: run `dvc fetch` and "
            f"`dvc pull --force` in {root}, or re-create the data version.") from exc
    finally:
        repo.close()
    verify_checkout(root, version, target)  # DVC trusts cache objects whose size and mtime look unchanged
    return version

