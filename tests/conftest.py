"""Shared fixtures: tiny settings in a temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from custintel.config import Settings, settings_from_dict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def tiny_params(data_dir: Path, n_customers: int = 300) -> dict:
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["paths"]["data_dir"] = str(data_dir)
    raw["data"]["n_customers"] = n_customers
    raw["train"].update(max_epochs=2, batch_size=256)
    raw["train"]["tuning"]["n_trials"] = 2
    raw["drift"]["sample_size"] = 1000
    return raw


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Settings:
    return settings_from_dict(tiny_params(tmp_path / "data"))


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(tmp_path / "data")))
    return path
