from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from custintel.config import load_settings, settings_from_dict
from custintel.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_params_yaml_parses_into_settings():
    settings = load_settings(ROOT / "params.yaml")
    assert settings.features.horizon_days == 90
    assert settings.train.tuning.n_trials >= 1


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_unknown_key_is_named():
    raw = _raw()
    raw["train"]["max_epoch"] = 3
    with pytest.raises(UserError, match=r"train\.max_epoch: unknown key"):
        settings_from_dict(raw)


def test_wrong_type_is_named_with_value():
    raw = _raw()
    raw["features"]["horizon_days"] = "ninety"
    with pytest.raises(UserError, match=r"features\.horizon_days: .*'ninety'"):
        settings_from_dict(raw)


def test_reversed_tuning_range_is_rejected():
    raw = _raw()
    raw["train"]["tuning"]["lr"] = [0.1, 0.001]
    with pytest.raises(UserError, match="lr: low bound"):
        settings_from_dict(raw)


def test_missing_file_gives_clear_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_snapshots_end_at_end_date_and_labelled_ones_have_full_horizon():
    settings = load_settings(ROOT / "params.yaml")
    snaps = settings.snapshot_dates()
    assert snaps == sorted(snaps)
    assert snaps[-1].date() == settings.data.end_date
    horizon = timedelta(days=settings.features.horizon_days)
    labelled = settings.labelled_snapshots()
    assert labelled and all(s + horizon <= snaps[-1] for s in labelled)


def test_env_overrides_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CUSTINTEL_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings(ROOT / "params.yaml").data_dir == tmp_path / "elsewhere"
