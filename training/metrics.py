"""Holdout metrics shared by tuning, evaluation and promotion.

Churn: ROC-AUC, PR-AUC, Brier score, log-loss and a calibration curve.
Value: MAE, RMSE, Spearman, normalized Gini, decile MAPE (predicted vs actual mean spend per
decile of predicted spend), top-10% revenue capture, aggregate bias, plus the decile and
cumulative-gain curves the model card plots.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

_EPS = 1e-7
N_BINS = 10


def churn_auc(churned: np.ndarray, churn_score: np.ndarray) -> float:
    if len(np.unique(churned)) < 2:
        return float("nan")
    return float(roc_auc_score(churned, churn_score))


def value_spearman(spend: np.ndarray, predicted: np.ndarray) -> float:
    if np.std(spend) == 0 or np.std(predicted) == 0:
        return 0.0
    return float(spearmanr(spend, predicted).statistic)


def _gini(actual: np.ndarray, order_by: np.ndarray) -> float:
    """Gini of `actual` ranked by `order_by` (descending; ties broken by position, stable)."""
    order = np.argsort(-order_by, kind="stable")
    cumulative = np.cumsum(actual[order]) / actual.sum()
    n = len(actual)
    return float(cumulative.sum() / n - (n + 1) / (2 * n))


def normalized_gini(spend: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of the predicted ranking over the Gini of the perfect ranking (1 = perfect, 0 = random)."""
    if spend.sum() <= 0:
        return float("nan")
    return _gini(spend, predicted) / _gini(spend, spend)


def decile_table(spend: np.ndarray, predicted: np.ndarray) -> list[dict]:
    """Mean predicted and actual spend per decile of predicted spend (decile 1 = highest)."""
    order = np.argsort(-predicted, kind="stable")
    table = []
    for k, rows in enumerate(np.array_split(order, N_BINS), start=1):
        table.append({"decile": k, "n": int(len(rows)), "predicted_mean": float(predicted[rows].mean()),
                      "actual_mean": float(spend[rows].mean())} if len(rows) else
                     {"decile": k, "n": 0, "predicted_mean": float("nan"), "actual_mean": float("nan")})
    return table


def gain_curve(spend: np.ndarray, predicted: np.ndarray, points: int = 20) -> list[dict]:
    """Share of actual revenue captured by the top x% of customers by predicted spend."""
    order = np.argsort(-predicted, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(spend[order])]) / max(spend.sum(), _EPS)
    shares = np.linspace(0, 1, points + 1)
    return [{"population": float(x), "revenue": float(cumulative[int(round(x * len(spend)))])}
            for x in shares]


def calibration_curve(churned: np.ndarray, churn_prob: np.ndarray) -> list[dict]:
    """Mean predicted churn probability and observed churn rate per predicted-probability decile."""
    order = np.argsort(churn_prob, kind="stable")
    return [{"n": int(len(rows)), "predicted": float(churn_prob[rows].mean()),
             "observed": float(churned[rows].mean())}
            for rows in np.array_split(order, N_BINS) if len(rows)]


def holdout_metrics(churned, spend, churn_prob, predicted_spend, churn_score=None) -> dict[str, float]:
    """Every scalar metric. `churn_score` ranks for ROC/PR-AUC when a model's best ranking is not
    its probability (BG/NBD ranks by expected purchases); by default the probability ranks."""
    churned, spend = np.asarray(churned).astype(int), np.asarray(spend, dtype=float)
    churn_prob, predicted = np.asarray(churn_prob, dtype=float), np.asarray(predicted_spend, dtype=float)
    score = churn_prob if churn_score is None else np.asarray(churn_score, dtype=float)
    error = predicted - spend
    mae = float(np.mean(np.abs(error)))
    clipped = np.clip(churn_prob, _EPS, 1 - _EPS)
    deciles = [d for d in decile_table(spend, predicted) if d["n"] and d["actual_mean"] > 0]
    top = np.argsort(-predicted, kind="stable")[: max(1, int(round(0.1 * len(spend))))]
    total = spend.sum()
    two_classes = len(np.unique(churned)) == 2
    return {
        "churn_auc": churn_auc(churned, score),
        "churn_pr_auc": float(average_precision_score(churned, score)) if two_classes else float("nan"),
        "churn_brier": float(np.mean((churn_prob - churned) ** 2)),
        "churn_log_loss": float(-np.mean(churned * np.log(clipped) + (1 - churned) * np.log(1 - clipped))),
        "value_mae": mae,
        "neg_value_mae": -mae,
        "value_rmse": float(np.sqrt(np.mean(error ** 2))),
        "value_spearman": value_spearman(spend, predicted),
        "value_gini": normalized_gini(spend, predicted),
        "value_decile_mape": float(np.mean([abs(d["predicted_mean"] - d["actual_mean"]) / d["actual_mean"]
                                            for d in deciles])) if deciles else float("nan"),
        "value_top10_capture": float(spend[top].sum() / total) if total > 0 else float("nan"),
        "value_bias": float(predicted.sum() / total - 1) if total > 0 else float("nan"),
        "n_rows": int(len(spend)),
    }


def holdout_curves(churned, spend, churn_prob, predicted_spend) -> dict[str, list[dict]]:
    churned, spend = np.asarray(churned).astype(int), np.asarray(spend, dtype=float)
    churn_prob, predicted = np.asarray(churn_prob, dtype=float), np.asarray(predicted_spend, dtype=float)
    return {"calibration": calibration_curve(churned, churn_prob), "deciles": decile_table(spend, predicted),
            "gain": gain_curve(spend, predicted)}


def tuning_score(churned, spend, churn_prob, predicted_spend) -> float:
    """The Optuna objective (higher is better): mean of churn ROC-AUC and value Spearman."""
    spend, predicted = np.asarray(spend, dtype=float), np.asarray(predicted_spend, dtype=float)
    auc = churn_auc(np.asarray(churned), np.asarray(churn_prob))
    return 0.5 * auc + 0.5 * value_spearman(spend, predicted)
