"""Drift engine: methods per type, effect-size thresholds, data-quality failures, the policy."""

import json

import numpy as np
import pandas as pd
import pytest

from custintel.config import DriftSection
from custintel.drift import PSI, WASSERSTEIN, column_drift, psi_by_value, wasserstein_norm
from custintel.monitoring import MonitorInputs, run_monitoring

CFG = DriftSection(sample_size=5000, report_sample=1000)


def _frame(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.gamma(2, 1, n),
                         "k": rng.poisson(1.0, n).astype(float)})


def _run(ref, cur, tmp_path, features=("a", "b", "c", "k"), **kw):
    return run_monitoring(MonitorInputs(ref, cur, list(features), **kw), CFG, 0, tmp_path)


def test_identical_data_reports_no_drift(tmp_path):
    frame = _frame(4000)
    summary = _run(frame, frame, tmp_path)
    assert summary["status"] == "no_drift" and summary["action"] == "none"
    assert summary["drifted_features"] == [] and summary["quality"]["ok"]
    assert all(v["value"] == 0 for v in summary["per_feature"].values())
    assert (tmp_path / "drift.html").stat().st_size > 1000
    assert json.loads((tmp_path / "drift.json").read_text())["status"] == "no_drift"


def test_methods_are_chosen_per_type():
    frame = _frame(3000)
    assert column_drift(frame["a"], frame["a"], CFG, 0).method == WASSERSTEIN
    assert column_drift(frame["k"], frame["k"], CFG, 0).method == PSI  # a count with few values
    cats = pd.Series(list("xyz") * 100)
    assert column_drift(cats, cats, CFG, 0).method == PSI


def test_independent_samples_of_one_distribution_stay_quiet(tmp_path):
    # sampling noise alone: far below the effect-size thresholds, whatever the seed
    for seed in range(5):
        summary = _run(_frame(5000, seed=seed), _frame(5000, seed=100 + seed), tmp_path)
        assert summary["status"] == "no_drift", summary["per_feature"]
    power = summary["sample"]["power"]
    assert power["wasserstein"]["max_noise"] < 0.05 and power["wasserstein"]["headroom"] > 2


def test_shifted_feature_is_named_and_alerts(tmp_path):
    summary = _run(_frame(5000), _frame(5000, shift=0.5, seed=1), tmp_path)
    assert summary["drifted_features"] == ["a"]
    assert summary["per_feature"]["a"]["value"] == pytest.approx(0.5, abs=0.05)  # an effect size
    # 1 of 4 features: above policy.alert_share (10%), below retrain_share (30%); no model to weigh it
    assert summary["status"] == "drift" and summary["action"] == "alert"


def test_statistics_equal_evidentlys():
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
    from evidently.legacy.core import ColumnType

    ref, cur = _frame(2000), _frame(2000, shift=0.3, seed=3)
    assert wasserstein_norm(ref["a"].to_numpy(), cur["a"].to_numpy()) == pytest.approx(
        _wasserstein_distance_norm(ref["a"], cur["a"], ColumnType.Numerical, 0.1)[0])
    evidently_psi = _psi(ref["k"], cur["k"], ColumnType.Numerical, 0.1)[0]
    assert psi_by_value(ref["k"], cur["k"]) == pytest.approx(evidently_psi)


def _model(frame):
    """A fixed scoring rule standing in for the champion: churn rises with a, spend with c."""
    churn = 1 / (1 + np.exp(-frame["a"].to_numpy()))
    return churn, 10 * (1 - churn) * (1 + 0.05 * frame["c"].to_numpy())


def test_importance_weighted_drift_and_prediction_drift_decide_retrain(tmp_path):
    summary = _run(_frame(5000), _frame(5000, shift=0.5, seed=1), tmp_path, predict=_model)
    weights = {c: v["importance"] for c, v in summary["per_feature"].items()}
    assert max(weights, key=weights.get) == "a" and weights["b"] == 0 and weights["k"] == 0
    assert summary["importance_weighted_share"] == pytest.approx(weights["a"])
    assert summary["prediction_drift"]["churn_score"]["drifted"]
    assert summary["action"] == "retrain"  # 25% of features, but they carry most of the importance
    assert any("importance" in r for r in summary["reasons"])


def test_realised_performance_on_matured_labels_can_trigger_retrain(tmp_path):
    ref = _frame(3000)
    rng = np.random.default_rng(5)
    churn, spend = _model(ref)
    holdout = ref.assign(churned=(rng.random(3000) < churn).astype(int), spend_horizon=spend)
    matured = _frame(3000, seed=2)
    # the world changed: churn no longer follows the model's rule
    matured = matured.assign(churned=rng.integers(0, 2, 3000), spend_horizon=_model(matured)[1])
    summary = _run(ref, _frame(3000, seed=2), tmp_path, predict=_model, matured=matured,
                   target_reference=holdout, baseline={"churn_auc": 0.7, "value_mae": 1.0})
    perf = summary["performance"]
    assert perf["status"] == "matured" and perf["realised"]["churn_auc"] == pytest.approx(0.5, abs=0.05)
    assert perf["auc_drop"] == pytest.approx(0.2, abs=0.05) and summary["action"] == "retrain"
    assert set(summary["target_drift"]) == {"churned", "spend_horizon"}
    assert (tmp_path / "target_drift.html").is_file()


@pytest.mark.parametrize("case, check", [
    ("zero_rows", "no_rows"), ("empty_frame", "missing_column"), ("all_null", "all_null"),
    ("missing_column", "missing_column"), ("new_column", "new_column"), ("cents", "out_of_range"),
    ("nulls", "null_increase"), ("new_category", "new_categories"),
])
def test_broken_inputs_fail_with_an_alert_never_silently(case, check, tmp_path):
    ref = _frame(3000).assign(channel=np.where(np.arange(3000) % 2, "web", "app"))
    cur = _frame(3000, seed=1).assign(channel=np.where(np.arange(3000) % 2, "web", "app"))
    features = ["a", "b", "c", "k", "channel"]
    cur = {"zero_rows": cur.iloc[:0], "empty_frame": pd.DataFrame(), "all_null": cur.assign(b=np.nan),
           "missing_column": cur.drop(columns="c"), "new_column": cur.assign(extra=1.0),
           "cents": cur.assign(c=cur["c"] * 100), "nulls": cur.assign(a=cur["a"].mask(cur.index % 5 == 0)),
           "new_category": cur.assign(channel=np.where(np.arange(3000) % 3, "web", "tiktok"))}[case]
    summary = _run(ref, cur, tmp_path, features=features)
    assert summary["status"] == "failed" and summary["action"] == "alert"
    assert check in {i["check"] for i in summary["quality"]["issues"]}
    assert summary["reasons"] and all(r.startswith("data quality") for r in summary["reasons"])


def test_genuine_shift_within_range_is_drift_not_a_quality_failure(tmp_path):
    ref = _frame(5000)
    summary = _run(ref, _frame(5000, seed=1).assign(c=lambda f: f["c"] * 1.3), tmp_path)
    assert summary["quality"]["ok"] and summary["status"] == "drift" and summary["drifted_features"] == ["c"]
