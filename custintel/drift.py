"""Evidently data-drift report: training window (reference) vs the newest snapshot (current).

    custintel drift        # writes drift.html + drift.json into the run directory
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class DriftSummary:
    drifted_share: float
    drifted_features: list[str]
    per_feature: dict[str, dict]
    threshold: float
    alert: bool
    reference_rows: int
    current_rows: int
    html_path: str

    def to_dict(self) -> dict:
        return asdict(self)


def _is_drifted(method: str, value: float, threshold: float) -> bool:
    # Distance-type methods drift above the threshold; p-value tests drift below it.
    distance = any(k in method.lower() for k in ("distance", "divergence", "psi"))
    return value >= threshold if distance else value < threshold


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, features: list[str], threshold: float,
                 sample_size: int, seed: int, out_dir: Path) -> DriftSummary:
    """Run Evidently's DataDriftPreset on `features`, save HTML + JSON, return the summary."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref = reference[features].sample(min(sample_size, len(reference)), random_state=seed)
    cur = current[features].sample(min(sample_size, len(current)), random_state=seed)
    snapshot = Report([DataDriftPreset(columns=features)]).run(cur, ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / "drift.html"
    snapshot.save_html(str(html))
    per_feature: dict[str, dict] = {}
    for metric in snapshot.dict()["metrics"]:
        cfg = metric["config"]
        if cfg.get("type", "").endswith("ValueDrift"):
            value = float(metric["value"])
            per_feature[cfg["column"]] = {
                "method": cfg["method"], "value": value, "threshold": cfg["threshold"],
                "drifted": _is_drifted(cfg["method"], value, cfg["threshold"]),
            }
    drifted = sorted((c for c, v in per_feature.items() if v["drifted"]),
                     key=lambda c: -per_feature[c]["value"])
    share = len(drifted) / max(len(per_feature), 1)
    summary = DriftSummary(drifted_share=share, drifted_features=drifted, per_feature=per_feature,
                           threshold=threshold, alert=share > threshold, reference_rows=len(ref),
                           current_rows=len(cur), html_path=str(html))
    (out_dir / "drift.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return summary
