"""The monitoring policy (params.yaml drift.policy): a run's evidence -> no action, alert, or retrain.

    status   failed    a data-quality check failed (broken feed, empty data, schema change): alert,
                       never retrain on broken data
             drift     the policy's alert or retrain thresholds are crossed: a share of the
                       features drifts, or one feature moves strongly (severity), or the drifted
                       features carry much of the model's importance, or realised performance drops
             no_drift  otherwise
    action   none | alert | retrain
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from custintel.config import DriftPolicySection


@dataclass(frozen=True)
class Decision:
    status: str
    action: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def decide(policy: DriftPolicySection, quality_issues: list[str], drifted_share: float,
           importance_share: float | None, drifted_predictions: list[str],
           auc_drop: float | None, mae_increase: float | None,
           severe: dict[str, float] | None = None) -> Decision:
    """`quality_issues`: one line per failed check; `importance_share`: share of the model's importance
    carried by drifted features (None without a model); auc_drop / mae_increase: holdout minus realised
    AUC and relative MAE rise on matured labels (None until labels mature); `severe`: {feature:
    statistic / threshold} of the features at or above policy.alert_severity."""
    if quality_issues:
        return Decision("failed", "alert", [f"data quality: {line}" for line in quality_issues])
    retrain, alert = [], []
    if drifted_share > policy.retrain_share:
        retrain.append(f"{drifted_share:.0%} of features drifted (retrain above {policy.retrain_share:.0%})")
    elif drifted_share > policy.alert_share:
        alert.append(f"{drifted_share:.0%} of features drifted (alert above {policy.alert_share:.0%})")
    elif severe:
        alert.append("strong drift of " + ", ".join(f"{name} ({ratio:.1f}x its threshold)"
                                                    for name, ratio in severe.items())
                     + f" (alert at {policy.alert_severity:g}x, whatever the share)")
    if importance_share is not None and importance_share > policy.retrain_importance_share:
        retrain.append(f"drifted features carry {importance_share:.0%} of the model's importance "
                       f"(retrain above {policy.retrain_importance_share:.0%})")
    if auc_drop is not None and auc_drop > policy.retrain_auc_drop:
        retrain.append(f"realised churn AUC {auc_drop:.3f} below the holdout AUC "
                       f"(retrain above {policy.retrain_auc_drop:.3f})")
    if mae_increase is not None and mae_increase > policy.retrain_mae_increase:
        retrain.append(f"realised value MAE {mae_increase:.0%} above the holdout MAE "
                       f"(retrain above {policy.retrain_mae_increase:.0%})")
    if drifted_predictions:
        alert.append(f"prediction drift: {', '.join(drifted_predictions)}")
    if retrain:
        return Decision("drift", "retrain", retrain + alert)
    if alert:
        return Decision("drift", "alert", alert)
    return Decision("no_drift", "none", [])
