"""Process environment for the heavy stack: every tool writes under the data directory.

Call `configure(settings)` before importing prefect, bentoml or dvc.
"""

from __future__ import annotations

import logging
import os

from custintel.config import Settings
from custintel.paths import DataPaths


def configure(settings: Settings) -> DataPaths:
    paths = DataPaths(settings.data_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    env = {
        "CUSTINTEL_DATA_DIR": str(paths.root),
        "PREFECT_HOME": str(paths.prefect_home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
    }
    os.environ.update(env)
    return paths


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "feast", "dvc", "httpx", "urllib3", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
