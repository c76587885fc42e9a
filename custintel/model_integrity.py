"""SHA-256 of model artifacts, recorded when a model is saved and checked before it is served.

`training.predictor.Predictor.save` records the weights' hash in model.json; registration in the
BentoML store records the hash of every file of the model directory in the model's metadata
(`artifact_sha256`). Serving refuses a model whose files no longer match (tampered or corrupted).
Weights are only ever read with `torch.load(weights_only=True)`: no arbitrary pickle runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from custintel.errors import UserError

METADATA_KEY = "artifact_sha256"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def directory_hashes(directory: Path) -> dict[str, str]:
    """{file name: sha256} of the regular files directly in `directory`."""
    return {item.name: sha256_file(item) for item in sorted(Path(directory).iterdir()) if item.is_file()}


def check_file(path: Path, expected: str, model: str) -> None:
    """UserError naming the file when its SHA-256 is not `expected`."""
    if not path.is_file():
        raise UserError(f"Model {model}: artifact {path.name} is missing from {path.parent}; the model "
                        "cannot be served. Re-register it (`custintel promote`) or roll back "
                        "(`custintel rollback`).")
    actual = sha256_file(path)
    if actual != expected:
        raise UserError(f"Model {model}: artifact {path.name} does not match the SHA-256 recorded when it "
                        f"was saved (recorded {expected[:12]}..., now {actual[:12]}...); refusing to load a "
                        "tampered or corrupted model. Restore the file, or retrain / roll back "
                        "(`custintel rollback`).")


def verify_directory(directory: Path, expected: dict[str, str], model: str) -> None:
    """Every file recorded in `expected` must be present with the recorded hash."""
    for name, digest in sorted(expected.items()):
        check_file(Path(directory) / name, digest, model)
