"""Checks the drift monitor against the generator's drift scenarios.

The reference is a no-drift world (seed s); each current world is generated with another seed (a new
sample of customers, so sampling noise is part of the test), either with a scenario from
`scenario_start` on, or without one (the repeated no-drift runs, which count false alarms). Both are
compared at the end of history, as the monitor compares the champion's reference with the newest
snapshot. Without a model, only the feature-share part of the policy applies.

    PYTHONPATH=. python benchmarks/drift_scenarios.py     # the table in README "Drift monitoring"
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from custintel.config import Settings, settings_from_dict
from custintel.data.scenarios import SCENARIOS
from custintel.features.schema import ENTITY_KEY, REVIEW_EMB_FEATURES, TIMESTAMP
from custintel.monitoring import MonitorInputs, run_monitoring


@dataclass
class World:
    features: pd.DataFrame  # every customer at the last snapshot
    projection: str  # fingerprint of the text projection its review embeddings use


def make_world(settings: Settings, scenario: str, seed: int, start: str | None, workdir: Path) -> World:
    """Generate a dataset and compute every customer's features at its last snapshot."""
    from custintel.data.generator import generate, write_tables
    from custintel.features.point_in_time import compute_features
    from custintel.features.text import review_text_table

    raw = settings.model_dump(mode="json")
    raw["data"].update(scenario=scenario, scenario_start=None if scenario == "none" else start)
    cfg = settings_from_dict(raw)
    folder = workdir / f"{scenario}-{seed}"
    write_tables(generate(cfg.data, seed=seed), folder)
    reviews = pd.read_parquet(folder / "reviews.parquet", columns=["review_id", "review_ts", "text"])
    text, projection = review_text_table(reviews, cfg.snapshot_dates()[0])
    features = compute_features(folder, [cfg.snapshot_dates()[-1]], review_text=text)
    return World(features.drop(columns=[ENTITY_KEY, TIMESTAMP]), projection.meta["fingerprint"])


def compare(reference: World, current: World, settings: Settings, out_dir: Path) -> dict:
    features = list(reference.features.columns)
    notes = []
    if reference.projection != current.projection:  # the monitor's rule (custintel.steps.monitor)
        features = [f for f in features if f not in REVIEW_EMB_FEATURES]
        notes.append("review_emb_* not compared: different text projections")
    return run_monitoring(MonitorInputs(reference.features, current.features, features, notes=notes),
                          settings.drift, settings.base.seed, out_dir)


def verify(settings: Settings, scenarios: list[str], no_drift_runs: int, start: str, seed: int = 1,
           workdir: Path | None = None) -> dict:
    """{"scenarios": {name: row}, "no_drift": [rows], "false_alarms": n} (a row: status, action,
    drifted features, expected features found, the largest statistic / threshold of any feature and
    each test's largest no-drift noise floor)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        reference = make_world(settings, "none", seed, None, tmp)
        rows = {}
        for i, name in enumerate(scenarios):
            summary = compare(reference, make_world(settings, name, seed + 100 + i, start, tmp), settings,
                              tmp / f"report-{name}")
            rows[name] = _row(summary, SCENARIOS[name].moves)
        quiet = [_row(compare(reference, make_world(settings, "none", seed + 1 + i, None, tmp), settings,
                              tmp / f"report-none-{i}"), ())
                 for i in range(no_drift_runs)]
    return {"scenarios": rows, "no_drift": quiet,
            "false_alarms": sum(r["action"] != "none" for r in quiet)}


def _row(summary: dict, expected: tuple[str, ...]) -> dict:
    flagged = set(summary["drifted_features"]) | {i["feature"] for i in summary["quality"]["issues"]}
    return {"status": summary["status"], "action": summary["action"],
            "drifted_share": round(summary["drifted_share"], 3), "drifted": summary["drifted_features"],
            "quality": sorted({f"{i['check']}:{i['feature']}" for i in summary["quality"]["issues"]}),
            "expected": list(expected), "expected_found": [f for f in expected if f in flagged],
            "max_severity": max((r["severity"] for r in summary["per_feature"].values()), default=None),
            "max_noise": {m: p["max_noise"] for m, p in summary.get("sample", {}).get("power", {}).items()}}
