"""Process environment for the heavy stack: every tool writes under the data directory.

Call `configure(settings)` before importing prefect, bentoml or dvc.
"""

from __future__ import annotations

import logging
import os

from custintel.config import Settings
from custintel.paths import DataPaths


def environment(settings: Settings) -> dict[str, str]:
    """Environment variables that send every tool's state into the data directory."""
    paths = DataPaths(settings.data_dir)
    return {
        "CUSTINTEL_DATA_DIR": str(paths.root),
        "PREFECT_HOME": str(paths.prefect_home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Local ephemeral API server; its first start runs DB migrations, which can take >20 s
        # (Prefect's default timeout) on a busy 2-core machine.
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }


def configure(settings: Settings) -> DataPaths:
    """Apply `environment(settings)` to this process and create the data directory."""
    paths = DataPaths(settings.data_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    os.environ.update(environment(settings))
    return paths


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "feast", "dvc", "httpx", "urllib3", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
