"""One monitoring run over in-memory frames: data quality, feature drift, prediction drift, target
drift and realised performance on matured labels, the policy's decision, HTML + JSON.

Pure: no data directory, no model store. `custintel.steps.monitor` gathers the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import DriftSection
from custintel.drift import ColumnDrift, column_drift, feature_drift, ranked, sample_rows
from custintel.drift_policy import decide
from custintel.drift_quality import check_quality
from custintel.drift_report import render_html
from custintel.features.schema import CHURN_LABEL, VALUE_LABEL

Predict = Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]  # frame -> (churn prob, spend)
PREDICTIONS = ("churn_score", "predicted_spend")


@dataclass
class MonitorInputs:
    reference: pd.DataFrame  # reference rows (a sample of the data the model was deployed on)
    current: pd.DataFrame  # every current row
    features: list[str]  # the columns to compare
    predict: Predict | None = None  # the model, for prediction drift, importance and performance
    matured: pd.DataFrame | None = None  # current data of the reference snapshot, with matured labels
    target_reference: pd.DataFrame | None = None  # labels (and features) the model was evaluated on
    baseline: dict | None = None  # the model's holdout metrics (churn_auc, value_mae)
    notes: list[str] = field(default_factory=list)


def permutation_importance(predict: Predict, frame: pd.DataFrame, features: list[str],
                           seed: int) -> dict[str, float]:
    """Share of the model's sensitivity per feature: mean |change| of the churn probability plus of
    log(1 + predicted spend) when the feature's values are shuffled; shares sum to 1."""
    rng = np.random.default_rng(seed)
    churn, spend = predict(frame)
    raw = {}
    for name in features:
        shuffled = frame.copy()
        shuffled[name] = rng.permutation(frame[name].to_numpy())
        c, s = predict(shuffled)
        raw[name] = float(np.mean(np.abs(c - churn)) + np.mean(np.abs(np.log1p(s) - np.log1p(spend))))
    total = sum(raw.values())
    return {k: (v / total if total > 0 else 1 / len(raw)) for k, v in raw.items()}


def _with_predictions(predict: Predict, frame: pd.DataFrame) -> pd.DataFrame:
    churn, spend = predict(frame)
    return pd.DataFrame({PREDICTIONS[0]: churn, PREDICTIONS[1]: spend})


def _power(results: dict[str, ColumnDrift], n_ref: int, n_cur: int) -> dict:
    """Per test method: the threshold, the largest no-drift noise of any column and the headroom."""
    power = {}
    runs = [(m, t) for r in results.values() for m, t in r.tests.items()]
    for method in sorted({m for m, _ in runs}):
        noise = [t.noise for m, t in runs if m == method and np.isfinite(t.noise)]
        threshold = next(t.threshold for m, t in runs if m == method)
        worst = max(noise) if noise else float("nan")
        power[method] = {
            "threshold": threshold, "max_noise": worst,
            "headroom": threshold / worst if noise and worst > 0 else None,
            "statement": (f"{n_ref} reference vs {n_cur} current rows: with no drift the {method} statistic "
                          f"stays below about {worst:.4f} (split-half estimate); it flags at {threshold:g}"
                          + (", so a shift of the whole distribution by >= "
                             f"{threshold + 3 * worst:.3f} std-devs is flagged (power ~1)"
                             if method == "wasserstein" else "")),
        }
    return power


def _matured(inputs: MonitorInputs, cfg: DriftSection, seed: int) -> tuple[dict, dict[str, ColumnDrift]]:
    """Realised performance of the model on matured labels, and drift of the labels themselves."""
    matured = inputs.matured
    if matured is None or inputs.predict is None or not len(matured):
        return {"status": "pending", "detail": "labels of the reference snapshot have not matured yet"}, {}
    from training.metrics import holdout_metrics

    churn, spend = inputs.predict(matured)
    realised = holdout_metrics(matured[CHURN_LABEL], matured[VALUE_LABEL], churn, spend)
    out = {"status": "matured", "rows": len(matured),
           "realised": {k: realised[k] for k in ("churn_auc", "value_mae")}}
    if inputs.baseline:
        out["holdout"] = {k: inputs.baseline[k] for k in ("churn_auc", "value_mae")}
        out["auc_drop"] = inputs.baseline["churn_auc"] - realised["churn_auc"]
        out["mae_increase"] = realised["value_mae"] / inputs.baseline["value_mae"] - 1
    targets = {}
    if inputs.target_reference is not None and len(inputs.target_reference):
        ref = sample_rows(inputs.target_reference, cfg.sample_size, seed)
        cur = sample_rows(matured, cfg.sample_size, seed + 1)
        targets = feature_drift(ref, cur, [CHURN_LABEL, VALUE_LABEL], cfg, seed)
    return out, targets


def run_monitoring(inputs: MonitorInputs, cfg: DriftSection, seed: int, out_dir: Path) -> dict:
    """Checks, tests and decides; writes <out_dir>/drift.json (+ drift.html when columns compare)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    issues, comparable = check_quality(inputs.reference, inputs.current, inputs.features, cfg.quality)
    summary: dict = {"reference_rows": len(inputs.reference), "current_rows": len(inputs.current),
                     "features": len(inputs.features), "notes": inputs.notes,
                     "quality": {"ok": not issues, "issues": [i.to_dict() for i in issues]}}
    per_feature: dict[str, ColumnDrift] = {}
    predictions: dict[str, ColumnDrift] = {}
    targets: dict[str, ColumnDrift] = {}
    importance, performance = None, {"status": "pending", "detail": "no model"}
    ref_s = sample_rows(inputs.reference, cfg.sample_size, seed)
    cur_s = sample_rows(inputs.current, cfg.sample_size, seed + 1)
    if comparable:
        per_feature = feature_drift(ref_s, cur_s, comparable, cfg, seed)
        power = _power(per_feature, len(ref_s), len(cur_s))
        summary["sample"] = {"reference": len(ref_s), "current": len(cur_s), "power": power}
        weak = [m for m, p in power.items() if p["headroom"] is not None and p["headroom"] < 3]
        if weak:
            summary["notes"] = [*inputs.notes, (
                f"underpowered: with {len(ref_s)} vs {len(cur_s)} rows the no-drift noise of "
                f"{', '.join(weak)} exceeds a third of its threshold; false alarms are possible "
                "(more rows, i.e. drift.sample_size or more customers, fix it)")]
    model_ok = inputs.predict is not None and not issues
    if model_ok:
        ref_p, cur_p = _with_predictions(inputs.predict, ref_s), _with_predictions(inputs.predict, cur_s)
        predictions = {name: column_drift(ref_p[name], cur_p[name], cfg, seed) for name in PREDICTIONS}
        importance = permutation_importance(inputs.predict, ref_s.head(cfg.importance_rows), comparable, seed)
        performance, targets = _matured(inputs, cfg, seed)
    drifted = [c for c in ranked(per_feature) if per_feature[c].drifted]
    share = len(drifted) / len(per_feature) if per_feature else 0.0
    importance_share = sum(importance[c] for c in drifted) if importance else None
    severe = {c: per_feature[c].severity for c in drifted
              if per_feature[c].severity >= cfg.policy.alert_severity}
    decision = decide(cfg.policy, [i.detail for i in issues], share, importance_share,
                      [c for c, r in predictions.items() if r.drifted],
                      performance.get("auc_drop"), performance.get("mae_increase"), severe)
    summary.update(
        status=decision.status, action=decision.action, reasons=decision.reasons,
        drifted_share=share, importance_weighted_share=importance_share, drifted_features=drifted,
        severe_features=severe,
        per_feature={c: {**r.to_dict(), **({"importance": importance[c]} if importance else {})}
                     for c, r in per_feature.items()},
        prediction_drift={c: r.to_dict() for c, r in predictions.items()},
        target_drift={c: r.to_dict() for c, r in targets.items()} or {"status": performance["status"]},
        performance=performance, html_path=None)
    if per_feature:
        summary["html_path"] = str(_html(inputs, per_feature, predictions, targets, ref_s, cur_s, cfg, seed,
                                         out_dir / "drift.html"))
    summary["json_path"] = str(out_dir / "drift.json")
    (out_dir / "drift.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _html(inputs: MonitorInputs, per_feature, predictions, targets, ref_s, cur_s, cfg: DriftSection,
          seed: int, path: Path) -> Path:
    top = {c: per_feature[c] for c in ranked(per_feature)[:cfg.report_features]}
    ref, cur = ref_s[list(top)], cur_s[list(top)]
    if predictions:
        ref = pd.concat([ref, _with_predictions(inputs.predict, ref_s)], axis=1)
        cur = pd.concat([cur, _with_predictions(inputs.predict, cur_s)], axis=1)
    tests = {**top, **predictions}
    if targets:  # labels come from other rows than the features: a report of their own
        render_html(inputs.target_reference, inputs.matured, targets, path.with_name("target_drift.html"),
                    cfg.report_sample, seed, cfg.quantile_bins)
    return render_html(ref, cur, tests, path, cfg.report_sample, seed, cfg.quantile_bins)

