"""The champion/challenger gate on synthetic holdouts whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from custintel.config import PromoteSection
from custintel.promotion_gate import Holdout, Scores, decide, expected_calibration_error, paired_bootstrap

N = 3000
CFG = PromoteSection(bootstrap={"n_resamples": 300, "confidence": 0.95})
FAST = 1.0  # ms: well inside any latency budget


def _world(seed: int = 0):
    """True churn probabilities, drawn labels and spend, and three value tiers of equal size."""
    rng = np.random.default_rng(seed)
    p_true = 1 / (1 + np.exp(-rng.normal(0, 1.5, N)))
    churned = (rng.random(N) < p_true).astype(int)
    spend = np.where(churned == 1, 0.0, rng.gamma(2.0, 50.0, N))
    tiers = np.array(["low", "mid", "high"])[np.arange(N) % 3]
    return rng, p_true, Holdout(churned, spend), {"tier": tiers}


def _noisy(rng, p: np.ndarray, scale: float) -> np.ndarray:
    """The same probabilities blurred on the logit scale (a worse ranking, still calibrated-ish)."""
    logit = np.log(p / (1 - p)) + rng.normal(0, scale, len(p))
    return 1 / (1 + np.exp(-logit))


def test_clear_win_is_promoted_with_a_ci_above_zero():
    rng, p_true, truth, groups = _world()
    challenger, champion = Scores(p_true, truth.spend), Scores(_noisy(rng, p_true, 3.0), truth.spend)
    decision = decide(CFG, truth, challenger, champion, groups, FAST, seed=1)
    assert decision["promoted"], decision["reasons"]
    assert decision["bootstrap"]["ci_low"] > 0 and decision["delta"] > 0.05
    assert {g["group"] for g in decision["groups"]} == {"low", "mid", "high"}


def test_tie_and_noise_are_rejected_because_the_ci_contains_zero():
    rng, p_true, truth, groups = _world()
    champion = Scores(_noisy(rng, p_true, 1.0), truth.spend)
    tie = decide(CFG, truth, champion, champion, groups, FAST, seed=1)
    assert not tie["promoted"] and tie["delta"] == 0
    # a challenger that differs from the champion by noise alone: a small delta either way
    jitter = Scores(np.clip(champion.churn_prob + rng.normal(0, 0.002, N), 1e-4, 1 - 1e-4), truth.spend)
    noise = decide(CFG, truth, jitter, champion, groups, FAST, seed=1)
    assert not noise["promoted"]
    assert any("does not exclude zero" in r for r in noise["reasons"]), noise["reasons"]
    assert noise["bootstrap"]["ci_low"] <= 0 <= noise["bootstrap"]["ci_high"]


def test_a_win_below_min_improvement_is_rejected():
    rng, p_true, truth, groups = _world()
    challenger, champion = Scores(p_true, truth.spend), Scores(_noisy(rng, p_true, 3.0), truth.spend)
    cfg = CFG.model_copy(update={"min_improvement": 0.5})
    decision = decide(cfg, truth, challenger, champion, groups, FAST, seed=1)
    assert not decision["promoted"] and decision["bootstrap"]["ci_low"] > 0
    assert any("does not exceed min_improvement" in r for r in decision["reasons"])


def test_regression_on_one_tier_is_rejected_even_when_the_overall_metric_wins():
    rng, p_true, truth, groups = _world()
    high = groups["tier"] == "high"
    # the champion ranks the high tier perfectly and the rest badly; the challenger the other way round
    champion = np.where(high, p_true, _noisy(rng, p_true, 3.0))
    challenger = np.where(high, _noisy(rng, p_true, 1.5), p_true)
    decision = decide(CFG, truth, Scores(challenger, truth.spend), Scores(champion, truth.spend), groups,
                      FAST, seed=1)
    assert decision["bootstrap"]["ci_low"] > 0  # overall it wins clearly...
    assert not decision["promoted"]  # ...but the high tier regresses
    regressed = [g["group"] for g in decision["groups"] if g.get("regressed")]
    assert regressed == ["high"]
    assert any("regresses on tier 'high'" in r for r in decision["reasons"])


def test_small_groups_and_undefined_metrics_are_skipped_not_failed():
    rng, p_true, truth, _ = _world()
    groups = {"segment": np.where(np.arange(N) < 10, 7, 1)}  # segment 7: 10 rows
    challenger, champion = Scores(p_true, truth.spend), Scores(_noisy(rng, p_true, 3.0), truth.spend)
    decision = decide(CFG, truth, challenger, champion, groups, FAST, seed=1)
    assert decision["promoted"]
    assert [g["skipped"] for g in decision["groups"] if g["group"] == 7] == ["fewer than 50 rows"]


def test_weighted_metrics_match_the_reported_ones_on_repeated_rows():
    """metric(weights) equals training.metrics on the sample with each row repeated by its weight
    (a bootstrap resample), ties included."""
    from custintel.promotion_gate import metric_value
    from training.metrics import churn_auc, value_spearman

    rng, p_true, truth, _ = _world()
    scores = Scores(np.round(_noisy(rng, p_true, 1.0), 2), np.round(truth.spend * rng.random(N), -1))
    counts = np.bincount(rng.integers(0, N, N), minlength=N)
    rows = np.repeat(np.arange(N), counts)
    assert metric_value("churn_auc", truth, scores, counts) == pytest.approx(
        churn_auc(truth.churned[rows], scores.churn_prob[rows]), abs=1e-12)
    assert metric_value("value_spearman", truth, scores, counts) == pytest.approx(
        value_spearman(truth.spend[rows], scores.spend[rows]), abs=1e-12)
    assert metric_value("neg_value_mae", truth, scores, counts) == pytest.approx(
        -np.mean(np.abs(scores.spend[rows] - truth.spend[rows])), abs=1e-9)
    mask = truth.spend > 0
    assert metric_value("value_spearman", truth, scores, mask) == pytest.approx(
        value_spearman(truth.spend[mask], scores.spend[mask]), abs=1e-12)


def test_nan_predictions_are_rejected_without_a_champion_too():
    _, p_true, truth, _ = _world()
    broken = p_true.copy()
    broken[17] = np.nan
    decision = decide(CFG, truth, Scores(broken, truth.spend), None, {}, FAST, seed=1)
    assert not decision["promoted"]
    assert decision["reasons"] == ["sanity check failed: finite predictions 1 NaN/inf predictions (limit 0)"]


def test_miscalibration_and_a_slow_model_are_rejected():
    _, p_true, truth, _ = _world()
    first = decide(CFG, truth, Scores(p_true, truth.spend), None, {}, FAST, seed=1)
    assert first["promoted"] and first["reasons"] == ["no champion yet"]
    shifted = Scores(np.clip(p_true + 0.2, 0, 1), truth.spend)  # same ranking, 0.2 too high
    decision = decide(CFG, truth, shifted, None, {}, FAST, seed=1)
    failed = {c["check"] for c in decision["sanity_checks"] if not c["passed"]}
    assert not decision["promoted"] and failed == {"calibration gap", "expected calibration error"}
    slow = decide(CFG, truth, Scores(p_true, truth.spend), None, {}, CFG.latency_budget_ms * 2, seed=1)
    assert not slow["promoted"] and "scoring latency" in slow["reasons"][0]


def test_bootstrap_is_paired_and_reproducible():
    rng, p_true, truth, _ = _world()
    a, b = Scores(p_true, truth.spend), Scores(_noisy(rng, p_true, 2.0), truth.spend)
    first = paired_bootstrap("churn_auc", truth, a, b, 200, 0.9, seed=3)
    assert first == paired_bootstrap("churn_auc", truth, a, b, 200, 0.9, seed=3)
    assert first["ci_low"] < first["delta"] < first["ci_high"]
    assert paired_bootstrap("neg_value_mae", truth, a, a, 50, 0.9, seed=3)["ci_high"] == 0


def test_expected_calibration_error_by_hand():
    churned = np.array([0, 0, 1, 1])
    assert expected_calibration_error(churned, np.array([0.0, 0.0, 1.0, 1.0]), bins=2) == 0
    assert expected_calibration_error(churned, np.array([0.5, 0.5, 0.5, 0.5]), bins=2) == pytest.approx(0.5)
