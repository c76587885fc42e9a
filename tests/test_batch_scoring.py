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


# ---- the streaming fast path (score_snapshot) against the straightforward pandas path -------------

def _offline_table(path: Path, customers: int = 3000, statistics: bool = True) -> list[str]:
    """Three snapshots (the newest lacks some customers), row groups that straddle snapshots, missing
    values, negative values (trends) and integer columns."""
    import numpy as np

    from custintel.features.schema import TIMESTAMP

    rng = np.random.default_rng(7)
    stamps = pd.to_datetime(["2025-10-01", "2025-11-01", "2025-12-01"], utc=True)
    frames = []
    for i, stamp in enumerate(stamps):
        ids = np.arange(customers)
        if i == 2:  # the newest snapshot lacks 300 customers
            ids = np.sort(rng.choice(customers, customers - 300, replace=False))
        frame = pd.DataFrame({ENTITY_KEY: ids, TIMESTAMP: stamp})
        frame["orders"] = rng.poisson(3, len(ids))  # int64
        frame["spend"] = rng.gamma(2.0, 30.0, len(ids))
        frame["trend"] = rng.normal(0, 5, len(ids))  # negative values
        frame["rate"] = rng.random(len(ids))
        frame.loc[rng.random(len(ids)) < 0.05, "spend"] = np.nan
        frame.loc[rng.random(len(ids)) < 0.05, "trend"] = np.nan
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(path, index=False, row_group_size=1100, write_statistics=statistics)
    return ["orders", "spend", "trend", "rate"]


def _model(features: pd.DataFrame, names: list[str], segment_names: list[str],
           transform: str = "signed_log1p"):
    import torch

    from training.network import MultiTaskNet, NetConfig
    from training.predictor import Predictor
    from training.scaler import FeatureScaler
    from training.segments import fit_segmenter
    from training.tiers import fit_tiers

    torch.manual_seed(0)
    cfg = NetConfig(n_features=len(names), hidden_dim=16, n_layers=2, dropout=0.0)
    predictor = Predictor(net=MultiTaskNet(cfg).eval(), net_config=cfg,
                          scaler=FeatureScaler(names, transform).fit(features))
    churn, spend = predictor.predict_arrays(features)
    segmenter, _ = fit_segmenter(features, segment_names, 0, 4, (3, 8), None, 0.5, churn, spend)
    tiers = fit_tiers(spend, ("low", "mid", "high"), 0.5, (0.5, 0.8))
    return ScoringModel(predictor, tiers, segmenter, "m:v1")


@pytest.mark.parametrize("segments", ["same", "reordered_subset", "extra_column"])
@pytest.mark.parametrize("statistics", [True, False])
@pytest.mark.parametrize("transform", ["signed_log1p", "clip_log1p"])  # clip: models saved before signed
def test_fast_path_equals_the_straightforward_path(tmp_path, segments, statistics, transform):
    from custintel.batch_scoring import score_snapshot
    from custintel.config import DEFAULT_PLAYBOOK

    path = tmp_path / "features.parquet"
    names = _offline_table(path, statistics=statistics)
    model_names = names[:-1] if segments == "extra_column" else names
    segment_names = {"same": names, "reordered_subset": names[::-1][:3], "extra_column": names}[segments]
    customers = read_latest_snapshot(path)
    model = _model(customers, model_names, segment_names, transform)

    out = tmp_path / "scores.parquet"
    summary = score_snapshot(path, model, DEFAULT_PLAYBOOK, out, batch_rows=500)
    fast = pd.read_parquet(out)
    reference = score_customers(customers, model, DEFAULT_PLAYBOOK)
    reference["model_version"] = model.tag
    assert summary["customers"] == len(fast) == 2700
    assert summary["snapshot"] == "2025-12-01 00:00:00+00:00"
    assert list(fast.columns) == list(reference.columns)
    assert fast["revenue_at_risk"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(fast.set_index(ENTITY_KEY).sort_index(),
                                  reference.set_index(ENTITY_KEY).sort_index(), check_exact=False, rtol=1e-6)
    # the served model's own predictions for the same feature rows
    churn, spend = model.predictor.predict_arrays(customers)
    served = pd.DataFrame({"churn_probability": churn, "predicted_spend": spend}, index=customers[ENTITY_KEY])
    pd.testing.assert_frame_equal(fast.set_index(ENTITY_KEY)[served.columns].loc[served.index], served,
                                  check_exact=False, rtol=1e-6)
    assert (fast["segment_id"].to_numpy() == model.segmenter.assign(
        customers.set_index(ENTITY_KEY).loc[fast[ENTITY_KEY]])).all()


def test_fast_path_on_an_empty_table_writes_an_empty_file(tmp_path):
    from custintel.batch_scoring import score_snapshot
    from custintel.config import DEFAULT_PLAYBOOK

    path = tmp_path / "features.parquet"
    names = _offline_table(path)
    model = _model(read_latest_snapshot(path), names, names)
    empty = tmp_path / "empty.parquet"
    pd.read_parquet(path).iloc[:0].to_parquet(empty, index=False)
    summary = score_snapshot(empty, model, DEFAULT_PLAYBOOK, tmp_path / "scores.parquet")
    assert summary["customers"] == 0 and len(pd.read_parquet(tmp_path / "scores.parquet")) == 0
