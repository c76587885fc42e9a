"""Holdout metrics shared by tuning, evaluation and promotion."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score


def churn_auc(churned: np.ndarray, churn_prob: np.ndarray) -> float:
    if len(np.unique(churned)) < 2:
        return float("nan")
    return float(roc_auc_score(churned, churn_prob))


def value_spearman(spend: np.ndarray, predicted: np.ndarray) -> float:
    if np.std(spend) == 0 or np.std(predicted) == 0:
        return 0.0
    return float(spearmanr(spend, predicted).statistic)


def holdout_metrics(churned, spend, churn_prob, predicted_spend) -> dict[str, float]:
    churned, spend = np.asarray(churned), np.asarray(spend, dtype=float)
    churn_prob, predicted_spend = np.asarray(churn_prob), np.asarray(predicted_spend, dtype=float)
    mae = float(np.mean(np.abs(spend - predicted_spend)))
    return {
        "churn_auc": churn_auc(churned, churn_prob),
        "value_mae": mae,
        "neg_value_mae": -mae,
        "value_spearman": value_spearman(spend, predicted_spend),
        "n_rows": int(len(spend)),
    }


def tuning_score(churned, spend, churn_prob, predicted_spend) -> float:
    """The Optuna objective (higher is better): mean of churn ROC-AUC and value Spearman."""
    m = holdout_metrics(churned, spend, churn_prob, predicted_spend)
    return 0.5 * m["churn_auc"] + 0.5 * m["value_spearman"]
