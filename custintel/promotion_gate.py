"""The champion/challenger gate: pure decision logic on both models' scores for the same holdout
customers.

A challenger is promoted only if every criterion holds:

1. sanity: finite predictions only; mean predicted churn within `calibration.max_gap` of the
   observed churn rate and expected calibration error (10 equal-count bins) within
   `calibration.max_ece`; scoring a batch within `latency_budget_ms`;
2. when there is a champion, the metric delta (challenger - champion) exceeds `min_improvement`
   and its paired-bootstrap confidence interval (customers resampled with replacement, both
   models scored on the same resample) lies above zero;
3. no value tier and no segment loses more than its tolerance on the metric (groups with fewer
   than `min_group_rows` rows, or where the metric is undefined, are reported and skipped).

Every failed criterion is one reason in the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from custintel.config import PromoteSection


@dataclass(frozen=True)
class Scores:
    churn_prob: np.ndarray
    spend: np.ndarray


@dataclass(frozen=True)
class Holdout:
    churned: np.ndarray
    spend: np.ndarray


class _Ties:
    """Tie groups of one score vector, in ascending order, found once (one sort). Every metric below
    takes a weight per row, so a bootstrap resample (row counts) or a group (a 0/1 mask) costs a
    few O(n) passes and no sort."""

    def __init__(self, values: np.ndarray) -> None:
        uniques, self.group = np.unique(values, return_inverse=True)
        self.n = len(uniques)

    def per_group(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.group, weights=weights, minlength=self.n)

    def average_ranks(self, weights: np.ndarray) -> np.ndarray:
        """Each row's average rank in the weighted sample (a row drawn twice ties with itself)."""
        counts = self.per_group(weights)
        return (np.cumsum(counts) - counts + (counts + 1) / 2)[self.group]


def _auc(ties: _Ties, churned: np.ndarray, weights: np.ndarray) -> float:
    """ROC-AUC of the weighted sample: P(churner scored above a non-churner) + half the ties;
    equal to sklearn's roc_auc_score on the rows repeated by their weights. NaN with one class."""
    pos, neg = ties.per_group(weights * churned), ties.per_group(weights * (1 - churned))
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((pos * (np.cumsum(neg) - neg + 0.5 * neg)).sum() / (n_pos * n_neg))


def _spearman(actual: _Ties, predicted: _Ties, weights: np.ndarray) -> float:
    """Spearman correlation (average ranks) of the weighted sample; 0 when either side is
    constant, as in training.metrics.value_spearman."""
    total = weights.sum()
    x, y = actual.average_ranks(weights), predicted.average_ranks(weights)
    x, y = x - (weights * x).sum() / total, y - (weights * y).sum() / total
    var_x, var_y = (weights * x * x).sum(), (weights * y * y).sum()
    if var_x <= 1e-12 * total or var_y <= 1e-12 * total:
        return 0.0
    return float((weights * x * y).sum() / np.sqrt(var_x * var_y))


def metric_on(metric: str, truth: Holdout, scores: Scores) -> Callable[[np.ndarray], float]:
    """metric(weights): the metric of the sample with these row weights (sorting done once here)."""
    if metric == "churn_auc":
        ties, churned = _Ties(scores.churn_prob), truth.churned.astype(float)
        return lambda w: _auc(ties, churned, w)
    if metric == "value_spearman":
        actual, predicted = _Ties(truth.spend), _Ties(scores.spend)
        return lambda w: _spearman(actual, predicted, w)
    if metric == "neg_value_mae":
        error = np.abs(scores.spend - truth.spend)
        return lambda w: -float((w * error).sum() / w.sum())
    raise ValueError(f"unknown promotion metric {metric!r}")


def metric_value(metric: str, truth: Holdout, scores: Scores, weights: np.ndarray | None = None) -> float:
    """The metric on all rows, or with row weights (a boolean mask selects rows, counts repeat them)."""
    weights = np.ones(len(truth.churned)) if weights is None else np.asarray(weights, dtype=float)
    return metric_on(metric, truth, scores)(weights)


def paired_bootstrap(metric: str, truth: Holdout, challenger: Scores, champion: Scores,
                     n_resamples: int, confidence: float, seed: int) -> dict:
    """Point delta and percentile confidence interval of metric(challenger) - metric(champion),
    both scored on the same resamples of the customers (drawn with replacement)."""
    rng = np.random.default_rng(seed)
    n = len(truth.churned)
    new, old = metric_on(metric, truth, challenger), metric_on(metric, truth, champion)
    deltas = []
    for _ in range(n_resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)  # times each row is drawn
        delta = new(weights) - old(weights)
        if np.isfinite(delta):  # e.g. AUC is undefined on a resample with one class
            deltas.append(delta)
    point = metric_value(metric, truth, challenger) - metric_value(metric, truth, champion)
    if not deltas:
        return {"delta": point, "ci_low": float("nan"), "ci_high": float("nan"), "confidence": confidence,
                "n_resamples": 0}
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return {"delta": float(point), "ci_low": float(low), "ci_high": float(high), "confidence": confidence,
            "n_resamples": len(deltas)}


def group_deltas(metric: str, truth: Holdout, challenger: Scores, champion: Scores,
                 groups: dict[str, np.ndarray], tolerances: dict[str, float], min_rows: int) -> list[dict]:
    """Per group (kind -> label of every row): both models' metric, the delta and whether it
    regressed beyond the kind's tolerance."""
    table = []
    for kind, labels in groups.items():
        labels = np.asarray(labels)
        for label in sorted(set(labels.tolist()), key=str):
            rows = labels == label
            row = {"kind": kind, "group": label if isinstance(label, str) else int(label),
                   "rows": int(rows.sum())}
            if row["rows"] < min_rows:
                table.append({**row, "skipped": f"fewer than {min_rows} rows"})
                continue
            new = metric_value(metric, truth, challenger, rows)
            old = metric_value(metric, truth, champion, rows)
            if not (np.isfinite(new) and np.isfinite(old)):
                table.append({**row, "skipped": f"{metric} undefined on this group"})
                continue
            table.append({**row, "challenger": new, "champion": old, "delta": new - old,
                          "regressed": bool(new - old < -tolerances[kind])})
    return table


def expected_calibration_error(churned: np.ndarray, churn_prob: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(churn_prob, kind="stable")
    n = len(order)
    return float(sum(len(rows) / n * abs(churn_prob[rows].mean() - churned[rows].mean())
                     for rows in np.array_split(order, bins) if len(rows)))


def sanity_checks(truth: Holdout, scores: Scores, latency_ms: float, cfg: PromoteSection) -> list[dict]:
    """Each check with its value, its limit and whether it passed."""
    bad = int((~np.isfinite(scores.churn_prob)).sum() + (~np.isfinite(scores.spend)).sum())
    checks = [{"check": "finite predictions", "value": bad, "limit": 0, "passed": bad == 0,
               "detail": f"{bad} NaN/inf predictions"}]
    if bad == 0:
        gap = abs(float(scores.churn_prob.mean()) - float(truth.churned.mean()))
        ece = expected_calibration_error(truth.churned, scores.churn_prob)
        checks += [
            {"check": "calibration gap", "value": gap, "limit": cfg.calibration.max_gap,
             "passed": gap <= cfg.calibration.max_gap,
             "detail": f"mean predicted churn {scores.churn_prob.mean():.4f} vs observed "
                       f"{truth.churned.mean():.4f}"},
            {"check": "expected calibration error", "value": ece, "limit": cfg.calibration.max_ece,
             "passed": ece <= cfg.calibration.max_ece, "detail": f"ECE {ece:.4f} (10 equal-count bins)"},
        ]
    checks.append({"check": "scoring latency", "value": latency_ms, "limit": cfg.latency_budget_ms,
                   "passed": latency_ms <= cfg.latency_budget_ms,
                   "detail": f"median {latency_ms:.1f} ms per batch"})
    return checks


def decide(cfg: PromoteSection, truth: Holdout, challenger: Scores, champion: Scores | None,
           groups: dict[str, np.ndarray], latency_ms: float, seed: int) -> dict:
    """The decision: promoted, every failed criterion as a reason, and the evidence."""
    truth = Holdout(np.asarray(truth.churned, dtype=int), np.asarray(truth.spend, dtype=float))
    checks = sanity_checks(truth, challenger, latency_ms, cfg)
    reasons = [f"sanity check failed: {c['check']} {c['detail']} (limit {c['limit']})"
               for c in checks if not c["passed"]]
    decision: dict = {"metric": cfg.metric, "sanity_checks": checks,
                      "challenger_value": metric_value(cfg.metric, truth, challenger)}
    sane = all(c["check"] != "finite predictions" or c["passed"] for c in checks)
    if champion is not None and sane:
        boot = paired_bootstrap(cfg.metric, truth, challenger, champion, cfg.bootstrap.n_resamples,
                                cfg.bootstrap.confidence, seed)
        decision.update(champion_value=metric_value(cfg.metric, truth, champion), bootstrap=boot,
                        delta=boot["delta"])
        if not boot["delta"] > cfg.min_improvement:
            reasons.append(f"{cfg.metric} delta {boot['delta']:+.4f} does not exceed min_improvement "
                           f"{cfg.min_improvement:+.4f}")
        if not boot["ci_low"] > 0:  # NaN (no valid resample) fails too
            reasons.append(f"{cfg.metric} delta {boot['confidence']:.0%} bootstrap CI "
                           f"[{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}] does not exclude zero")
        tolerances = {"tier": cfg.tier_tolerance, "segment": cfg.segment_tolerance}
        table = group_deltas(cfg.metric, truth, challenger, champion, groups, tolerances, cfg.min_group_rows)
        decision["groups"] = table
        reasons += [f"{cfg.metric} regresses on {g['kind']} {g['group']!r}: {g['delta']:+.4f} "
                    f"(tolerance {tolerances[g['kind']]:.4f}, {g['rows']} rows)"
                    for g in table if g.get("regressed")]
    decision.update(promoted=not reasons, reasons=reasons or (
        ["no champion yet"] if champion is None else
        [f"{cfg.metric} delta {decision['delta']:+.4f}, {cfg.bootstrap.confidence:.0%} CI "
         f"[{decision['bootstrap']['ci_low']:+.4f}, {decision['bootstrap']['ci_high']:+.4f}]"]))
    return decision
