"""Data versions: a catalogued version can be checked out again and reproduces a run's metrics."""

import pytest

from custintel.config import settings_from_dict
from custintel.data.catalogue import list_versions
from custintel.errors import UserError
from custintel.paths import DataPaths
from custintel.steps.evaluate import evaluate
from custintel.steps.features import build_features, feast_apply
from custintel.steps.ingest import ingest
from custintel.steps.train import train
from tests.conftest import tiny_params

pytestmark = pytest.mark.e2e  # trains twice


def _settings(tmp_path, seed: int, revision: str | None = None):
    raw = tiny_params(tmp_path / "data")
    raw["base"]["seed"] = seed
    raw["versioning"]["revision"] = revision
    return settings_from_dict(raw)


def _train_and_evaluate(settings, run_id: str) -> tuple[dict, dict]:
    data = ingest(settings)
    build_features(settings, data["data_version"])
    feast_apply(settings)
    run_dir = DataPaths(settings.data_dir).run_dir(run_id)
    train(settings, run_dir, data["data_version"])
    return data, evaluate(settings, run_dir, data["data_version"])


def test_switching_back_to_a_version_reproduces_its_metrics(tmp_path):
    first, metrics = _train_and_evaluate(_settings(tmp_path, seed=1), "first")
    assert first["created"]
    other = ingest(_settings(tmp_path, seed=2))
    assert other["created"] and other["data_version"] != first["data_version"]
    root = DataPaths(_settings(tmp_path, seed=1).data_dir).dvc_repo
    versions = list_versions(root)
    assert [v["version"] for v in versions] == [first["data_version"], other["data_version"]]
    assert [v["current"] for v in versions] == [False, True]
    assert versions[1]["origin"]["seed"] == 2

    pinned = _settings(tmp_path, seed=1, revision=first["data_version"][:10])
    again, metrics_again = _train_and_evaluate(pinned, "again")
    assert not again["created"] and again["data_version"] == first["data_version"]
    assert metrics_again["model"] == metrics["model"]
    assert metrics_again["data_version"] == first["data_version"]

    # unpinned, the seed-2 settings find their catalogued version instead of generating again
    assert not ingest(_settings(tmp_path, seed=2))["created"]


def test_unknown_revision_is_a_clear_error(tmp_path):
    ingest(_settings(tmp_path, seed=1))
    with pytest.raises(UserError, match=r"versioning.revision 'deadbeef' matches no catalogued"):
        ingest(_settings(tmp_path, seed=1, revision="deadbeef"))
