"""Batch scoring: `custintel score-batch` and the Prefect flow score every customer of the newest
snapshot with the champion, exactly as training scored them; chunking does not change a score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from custintel.batch_scoring import ScoringModel, read_latest_snapshot, score_customers
from custintel.config import load_settings
from custintel.features.schema import ENTITY_KEY
from custintel.paths import DataPaths
from tests.conftest import PROJECT_ROOT
from tests.servable import serving_env

COLUMNS = ["churn_probability", "predicted_spend", "value_tier", "segment_id", "segment_name",
           "revenue_at_risk", "action"]


def _run(servable, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env=serving_env(servable["params"]), timeout=600)


def _same_as_training(servable, scores: pd.DataFrame) -> None:
    trained = pd.read_parquet(f"{servable['run_dir']}/scores.parquet").set_index(ENTITY_KEY)
    scores = scores.set_index(ENTITY_KEY)
    assert scores.index.is_unique and set(scores.index) == set(trained.index)
    assert scores["revenue_at_risk"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(scores.loc[trained.index, COLUMNS], trained[COLUMNS], check_exact=False,
                                  rtol=1e-6)


def test_score_batch_cli_scores_every_current_customer(servable, tmp_path):
    out = tmp_path / "scores.parquet"
    proc = _run(servable, "-m", "custintel.cli", "-p", str(servable["params"]), "score-batch",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    scores = pd.read_parquet(out)
    assert summary["customers"] == len(scores) and summary["model_version"] == servable["tag"]
    assert set(scores["model_version"]) == {servable["tag"]}
    _same_as_training(servable, scores)


def test_score_batch_prefect_flow(servable, tmp_path):
    out = tmp_path / "flow.parquet"
    script = ("import sys; from custintel.config import load_settings; "
              "from custintel.runtime import configure; configure(load_settings(sys.argv[1])); "
              "from flows.score_batch import score_batch; "
              "print(score_batch(params_path=sys.argv[1], out=sys.argv[2])['customers'])")
    proc = _run(servable, "-c", script, str(servable["params"]), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.strip().splitlines()[-1]) == len(pd.read_parquet(out))
    _same_as_training(servable, pd.read_parquet(out))


def test_chunking_does_not_change_scores(servable):
    from training.predictor import Predictor
    from training.segments import Segmenter
    from training.tiers import ValueTiers

    settings = load_settings(servable["params"])
    model_dir = Path(servable["run_dir"]) / "model"
    model = ScoringModel(Predictor.load(model_dir), ValueTiers.load(model_dir), Segmenter.load(model_dir))
    customers = read_latest_snapshot(DataPaths(settings.data_dir).features_file, servable["features"])
    whole = score_customers(customers, model, settings.playbook)
    pd.testing.assert_frame_equal(score_customers(customers, model, settings.playbook, chunk_rows=7), whole)


def test_a_features_file_without_the_models_columns_is_a_user_error(tmp_path):
    from custintel.errors import UserError

    path = tmp_path / "features.parquet"
    stamps = pd.to_datetime(["2025-01-01"], utc=True)
    pd.DataFrame({ENTITY_KEY: [1], "event_timestamp": stamps}).to_parquet(path)
    with pytest.raises(UserError, match=r"lacks the columns \['recency_days'\]"):
        read_latest_snapshot(path, ["recency_days"])
    with pytest.raises(UserError, match="custintel features"):
        read_latest_snapshot(tmp_path / "none.parquet")
