"""The public CDNOW transaction log (shipped inside the `lifetimes` wheel) through the whole
`retrain` flow: import, DVC, validation, purchase-only features, Feast, training, evaluation
against the baselines, drift and promotion, then online scoring from Feast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from custintel.config import load_settings
from custintel.features.schema import PURCHASE
from custintel.paths import DataPaths
from tests.conftest import SMALL_RUN_PROMOTE
from tests.test_end_to_end import ROOT, _retrain

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cdnow")
    raw = yaml.safe_load((ROOT / "configs" / "cdnow.yaml").read_text())
    raw["paths"]["data_dir"] = str(tmp / "data")
    raw["features"]["snapshot_every_days"] = 60  # fewer training rows: this checks the plumbing
    raw["train"] = {"max_epochs": 2, "batch_size": 1024, "tuning": {"n_trials": 2}}
    raw["drift"] = {"sample_size": 2000}
    raw["promote"] = SMALL_RUN_PROMOTE
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    settings = load_settings(params)
    _register_every_group_first(settings)  # as if the data dir had held generated data before
    return settings, _retrain(params)


def _register_every_group_first(settings) -> None:
    from custintel import feature_store
    from feature_repo.definitions import build_definitions

    store = feature_store.open_store(settings)
    store.apply(build_definitions(str(DataPaths(settings.data_dir).features_file), 90))


def test_the_log_is_versioned_validated_and_trained_on(cdnow_run):
    settings, summary = cdnow_run
    paths = DataPaths(settings.data_dir)
    assert summary["data_created"] and summary["metrics"]["churn_auc"] > 0.7
    metrics = json.loads(Path(summary["reports"]["metrics"]).read_text())
    assert metrics["oracle"] is None  # real data: no ground truth
    assert {"lightgbm", "rfm_rule"} <= set(metrics["baselines"])
    assert metrics["model"]["n_rows"] == 23570  # every CDNOW customer is in the holdout snapshot
    validation = json.loads((paths.clean / "validation.json").read_text())
    assert validation["tables"]["transactions"]["rows"] == 69659
    assert validation["derived"]["customers"] == 23570
    manifest = json.loads((paths.raw / "source.json").read_text())
    assert manifest["path"] == "package:lifetimes/datasets/CDNOW_master.txt" and len(manifest["sha256"]) == 64


def test_missing_tables_leave_their_features_absent(cdnow_run):
    settings, summary = cdnow_run
    from custintel import feature_store

    store = feature_store.open_store(settings)
    assert [v.name for v in store.list_feature_views()] == [PURCHASE.name]  # stale views deleted
    assert feature_store.service_feature_names(store) == list(PURCHASE.features)
    offline = json.loads((DataPaths(settings.data_dir).offline / "features.json").read_text())
    assert offline["feature_groups"] == [PURCHASE.name]
    drift = json.loads(Path(summary["reports"]["drift_json"]).read_text())
    assert set(drift["per_feature"]) == set(PURCHASE.features)


def test_the_champion_scores_imported_customers_online(cdnow_run):
    settings, summary = cdnow_run
    # A fresh process: BentoML reads its store location (the data dir) once, at import.
    script = ("import json, sys; from custintel.config import load_settings; "
              "from custintel.runtime import configure; from custintel.scoring import OnlineScorer; "
              "s = load_settings(sys.argv[1]); configure(s); "
              "print(json.dumps(OnlineScorer.from_settings(s).predict([1, 99999999])))")
    params = settings.data_dir.parent / "params.yaml"
    proc = subprocess.run([sys.executable, "-c", script, str(params)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = json.loads(proc.stdout.strip().splitlines()[-1])
    assert body["model_version"] == summary["promotion"]["challenger"]
    first, unknown = body["predictions"]
    assert first["found"] and 0 <= first["churn_probability"] <= 1 and first["predicted_spend"] >= 0
    assert not unknown["found"]
