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


def rank_auc(churned: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from average ranks (equal to sklearn's roc_auc_score, ~15x faster on small arrays,
    which the bootstrap calls thousands of times); NaN with a single class."""
    from scipy.stats import rankdata

    positives = int(churned.sum())
    negatives = len(churned) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[churned == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def rank_spearman(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman correlation (average ranks, as scipy's); 0 when either side is constant, as in
    training.metrics.value_spearman."""
    from scipy.stats import rankdata

    if np.std(actual) == 0 or np.std(predicted) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(actual), rankdata(predicted))[0, 1])


def metric_value(metric: str, truth: Holdout, scores: Scores, rows: np.ndarray | None = None) -> float:
    idx = slice(None) if rows is None else rows
    if metric == "churn_auc":
        return rank_auc(truth.churned[idx], scores.churn_prob[idx])
    if metric == "value_spearman":
        return rank_spearman(truth.spend[idx], scores.spend[idx])
    if metric == "neg_value_mae":
        return -float(np.mean(np.abs(scores.spend[idx] - truth.spend[idx])))
    raise ValueError(f"unknown promotion metric {metric!r}")


def paired_bootstrap(metric: str, truth: Holdout, challenger: Scores, champion: Scores,
                     n_resamples: int, confidence: float, seed: int) -> dict:
    """Point delta and percentile confidence interval of metric(challenger) - metric(champion)."""
    rng = np.random.default_rng(seed)
    n = len(truth.churned)
    deltas = []
    for _ in range(n_resamples):
        rows = rng.integers(0, n, n)
        delta = metric_value(metric, truth, challenger, rows) - metric_value(metric, truth, champion, rows)
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
            rows = np.flatnonzero(labels == label)
            row = {"kind": kind, "group": label if isinstance(label, str) else int(label), "rows": len(rows)}
            if len(rows) < min_rows:
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
