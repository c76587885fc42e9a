"""Drift engine: methods per type, effect-size thresholds, data-quality failures, the policy."""

import json

import numpy as np
import pandas as pd
import pytest

from custintel.config import DriftSection
from custintel.drift import (
    PSI,
    QUANTILE_PSI,
    WASSERSTEIN,
    column_drift,
    psi_by_value,
    quantile_psi,
    wasserstein_norm,
)
from custintel.monitoring import MonitorInputs, run_monitoring

CFG = DriftSection(sample_size=20000, report_sample=1000)


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
    for numeric in ("a", "k"):  # continuous, and a count with few values
        assert set(column_drift(frame[numeric], frame[numeric], CFG, 0).tests) == {WASSERSTEIN, QUANTILE_PSI}
    cats = pd.Series(list("xyz") * 100)
    result = column_drift(cats, cats, CFG, 0)
    assert result.method == PSI and set(result.tests) == {PSI}


def test_both_numeric_tests_put_a_tenth_of_a_std_dev_on_their_threshold():
    ref, cur = _frame(200_000), _frame(200_000, shift=0.1, seed=1)
    result = column_drift(ref["a"], cur["a"], CFG, 0)
    assert result.tests[WASSERSTEIN].value == pytest.approx(CFG.wasserstein_threshold, rel=0.1)
    assert result.tests[QUANTILE_PSI].value == pytest.approx(CFG.quantile_psi_threshold, rel=0.15)


def _zero_inflated(n, zero_share, seed):
    """Spend-like: a share of customers with nothing, the others heavy-tailed (lognormal)."""
    rng = np.random.default_rng(seed)
    return pd.Series(np.where(rng.random(n) < zero_share, 0.0, rng.lognormal(4, 1.5, n)))


def test_more_zeros_in_a_heavy_tailed_feature_is_drift_the_std_normed_distance_misses():
    # 10 more points of customers without spend (what a churn wave does to spend_90d): the tail
    # dominates the std, so Wasserstein / std stays under 0.1; the quantile PSI sees the zero bin grow
    result = column_drift(_zero_inflated(20000, 0.5, 0), _zero_inflated(20000, 0.6, 1), CFG, 0)
    assert result.tests[WASSERSTEIN].value < CFG.wasserstein_threshold
    assert result.drifted and result.method == QUANTILE_PSI
    assert not column_drift(_zero_inflated(20000, 0.5, 0), _zero_inflated(20000, 0.5, 2), CFG, 0).drifted


def test_small_samples_raise_the_psi_threshold_to_its_significance_floor():
    def quantile_test(n):
        return column_drift(_zero_inflated(n, 0.5, 0), _zero_inflated(n, 0.5, 1), CFG, 0).tests[QUANTILE_PSI]

    small, large = quantile_test(1000), quantile_test(20000)
    assert large.threshold == CFG.quantile_psi_threshold
    # 6 filled bins, 1000 rows a side: chi2(5) 99.99% quantile (25.7) x 2/1000
    assert small.threshold == pytest.approx(0.0515, abs=0.001) and small.value < small.threshold


def test_small_samples_raise_the_wasserstein_threshold_to_its_significance_floor():
    rng = np.random.default_rng(0)
    big_shift = column_drift(pd.Series(rng.normal(0, 1, 20000)), pd.Series(rng.normal(0.15, 1, 20000)),
                             CFG, 0)
    assert big_shift.tests[WASSERSTEIN].threshold == CFG.wasserstein_threshold  # floor ~0.04 at 20,000
    assert big_shift.drifted
    small_shift = column_drift(pd.Series(rng.normal(0, 1, 300)), pd.Series(rng.normal(0.15, 1, 300)), CFG, 0)
    assert small_shift.tests[WASSERSTEIN].threshold > 0.25  # 300 a side: noise alone reaches ~0.22 (1%)
    # 200 no-drift comparisons of a zero-inflated, heavy-tailed feature at 300 rows a side: the
    # configured 0.1 alone flags over a third of them; the raised threshold almost none
    flagged = raw = 0
    for seed in range(200):
        ref, cur = _zero_inflated(300, 0.5, 1000 + seed), _zero_inflated(300, 0.5, 5000 + seed)
        raw += wasserstein_norm(ref.to_numpy(), cur.to_numpy()) >= CFG.wasserstein_threshold
        test = column_drift(ref, cur, CFG, 0).tests[WASSERSTEIN]
        flagged += test.value >= test.threshold
    assert raw >= 50 and flagged <= 6  # measured: 78 and 3 (1.5%)


def test_independent_samples_of_one_distribution_stay_quiet(tmp_path):
    # sampling noise alone: far below the effect-size thresholds, whatever the seed
    for seed in range(5):
        summary = _run(_frame(10000, seed=seed), _frame(10000, seed=100 + seed), tmp_path)
        assert summary["status"] == "no_drift", summary["per_feature"]
    power = summary["sample"]["power"]
    assert power["wasserstein"]["max_noise"] < 0.05 and power["wasserstein"]["headroom"] > 2
    assert power["quantile_psi"]["max_noise"] < 0.004 and power["quantile_psi"]["headroom"] > 2


def test_shifted_feature_is_named_and_alerts(tmp_path):
    summary = _run(_frame(5000), _frame(5000, shift=0.5, seed=1), tmp_path)
    assert summary["drifted_features"] == ["a"]
    tests = summary["per_feature"]["a"]["tests"]
    assert tests["wasserstein"]["value"] == pytest.approx(0.5, abs=0.05)  # an effect size
    assert tests["quantile_psi"]["value"] == pytest.approx(0.25, abs=0.04)  # about 0.5 ** 2
    # 1 of 4 features: above policy.alert_share (10%), below retrain_share (30%); no model to weigh it
    assert summary["status"] == "drift" and summary["action"] == "alert"


def test_one_strong_feature_alerts_whatever_the_share(tmp_path):
    n = 20000  # noise: Wasserstein ~0.01, quantile PSI ~0.001 (and its threshold stays 0.01)
    ref = pd.concat([_frame(n)] + [_frame(n, seed=s).add_suffix(str(s)) for s in (7, 8)], axis=1)
    cur = pd.concat([_frame(n, seed=1)] + [_frame(n, seed=s + 10).add_suffix(str(s)) for s in (7, 8)], axis=1)
    features = list(ref.columns)  # 12
    weak = _run(ref, cur.assign(a=cur["a"] + 0.12), tmp_path / "weak", features=features)
    assert weak["drifted_features"] == ["a"] and weak["action"] == "none"  # 1 of 12, 1.2-1.45x threshold
    assert 1 < weak["per_feature"]["a"]["severity"] < 1.7
    strong = _run(ref, cur.assign(a=cur["a"] + 0.3), tmp_path / "strong", features=features)
    assert strong["drifted_features"] == ["a"] and strong["action"] == "alert"
    assert list(strong["severe_features"]) == ["a"] and "strong drift of a" in strong["reasons"][0]


def test_statistics_equal_evidentlys():
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
    from evidently.legacy.core import ColumnType

    from custintel.drift_report import register_quantile_psi

    ref, cur = _frame(2000), _frame(2000, shift=0.3, seed=3)
    assert wasserstein_norm(ref["a"].to_numpy(), cur["a"].to_numpy()) == pytest.approx(
        _wasserstein_distance_norm(ref["a"], cur["a"], ColumnType.Numerical, 0.1)[0])
    evidently_psi = _psi(ref["k"], cur["k"], ColumnType.Numerical, 0.1)[0]
    assert psi_by_value(ref["k"], cur["k"]) == pytest.approx(evidently_psi)
    register_quantile_psi(CFG.quantile_bins)  # what the HTML report shows
    test = get_stattest(ref["c"], cur["c"], ColumnType.Numerical, QUANTILE_PSI)
    assert test(ref["c"], cur["c"], ColumnType.Numerical, 0.01).drift_score == pytest.approx(
        quantile_psi(ref["c"].to_numpy(), cur["c"].to_numpy(), CFG.quantile_bins))


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
