"""Cost of the promotion gate's paired bootstrap of the churn ROC-AUC delta on a holdout of the
default dataset's size: the gate's (custintel.promotion_gate.paired_bootstrap: one sort per model,
then weighted O(n) passes per resample) against the straightforward loop (index the resampled rows,
sklearn's roc_auc_score for both models; the baseline, same resamples, same process), and the
whole gate decision (bootstrap + tier groups + sanity checks) with the default settings.

Synthetic scores: true churn probabilities, drawn labels, a champion that ranks them worse.

    PYTHONPATH=. python benchmarks/promotion_gate.py --rows 18185 --resamples 1000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from custintel.config import PromoteSection
from custintel.promotion_gate import Holdout, Scores, decide, paired_bootstrap


def _world(rows: int, seed: int):
    rng = np.random.default_rng(seed)
    p_true = 1 / (1 + np.exp(-rng.normal(0, 1.5, rows)))
    churned = (rng.random(rows) < p_true).astype(int)
    spend = np.where(churned == 1, 0.0, rng.gamma(2.0, 50.0, rows))
    noisy = 1 / (1 + np.exp(-(np.log(p_true / (1 - p_true)) + rng.normal(0, 1.0, rows))))
    tiers = np.array(["low", "mid", "high"])[np.arange(rows) % 3]
    return Holdout(churned, spend), Scores(p_true, spend), Scores(noisy, spend), {"tier": tiers}


def _baseline(truth: Holdout, a: Scores, b: Scores, resamples: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    n = len(truth.churned)
    deltas = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        deltas.append(roc_auc_score(truth.churned[rows], a.churn_prob[rows])
                      - roc_auc_score(truth.churned[rows], b.churn_prob[rows]))
    return deltas


def _seconds(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=18185)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    truth, challenger, champion, groups = _world(args.rows, 0)
    cfg = PromoteSection(bootstrap={"n_resamples": args.resamples, "confidence": 0.95})
    base, fast, gate = [], [], []
    for _ in range(args.runs):
        base_s, deltas = _seconds(lambda: _baseline(truth, challenger, champion, args.resamples, 0))
        fast_s, boot = _seconds(lambda: paired_bootstrap("churn_auc", truth, challenger, champion,
                                                         args.resamples, 0.95, 0))
        low, high = np.quantile(deltas, [0.025, 0.975])
        assert abs(low - boot["ci_low"]) < 1e-9 and abs(high - boot["ci_high"]) < 1e-9  # same interval
        gate_s, decision = _seconds(lambda: decide(cfg, truth, challenger, champion, groups, 1.0, seed=0))
        base.append(base_s)
        fast.append(fast_s)
        gate.append(gate_s)
    print(json.dumps({
        "rows": args.rows, "resamples": args.resamples, "runs": args.runs,
        "bootstrap_baseline_s": statistics.median(base), "bootstrap_gate_s": statistics.median(fast),
        "speedup": statistics.median(base) / statistics.median(fast),
        "gate_decision_s": statistics.median(gate), "promoted": decision["promoted"],
        "delta": decision["delta"], "ci": [decision["bootstrap"]["ci_low"], decision["bootstrap"]["ci_high"]],
    }, indent=2))


if __name__ == "__main__":
    main()
