"""Holdout metrics collected over seeds and printed as one mean ± std table (benchmarks/seed_spread.py,
benchmarks/model_on_split.py)."""

from __future__ import annotations

import statistics

METRICS = ("churn_auc", "churn_pr_auc", "churn_brier", "value_mae", "value_spearman", "value_gini",
           "value_top10_capture")


def rounded(metrics: dict) -> dict:
    """The reported metrics of one model and seed, to 4 decimals (one JSON line)."""
    return {k: round(metrics[k], 4) for k in METRICS}


class SeedTable:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = {}

    def add(self, model: str, metrics: dict) -> None:
        for k in METRICS:
            self.values.setdefault(model, {}).setdefault(k, []).append(metrics[k])

    def markdown(self) -> str:
        lines = ["| model | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        for model, by_metric in self.values.items():
            cells = [f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
                     for v in by_metric.values()]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
