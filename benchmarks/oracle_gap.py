"""The gap between the two ground-truth oracles on generated data: Bayes-optimal (latent traits +
purchase history up to the snapshot) vs clairvoyant (also knows who is still active), with two
one-signal rules for scale, at the last labelled snapshot (or every labelled one with --all).

    PYTHONPATH=. python benchmarks/oracle_gap.py                 # params.yaml: 20k customers, seed 42
    PYTHONPATH=. python benchmarks/oracle_gap.py --customers 5000 --scenario churn_wave --start 2025-08-01

No DVC, no ingest: the generator writes its raw tables to a temporary directory, labels come from
`compute_labels`, the oracles from `true_scores`. The recency rules rank churn by days since the
last order (what the Bayes-optimal oracle sees, without the traits) and since the last browsing
event (information the purchase history does not hold: sessions go on until a month after dropout).
`bayes_plus_session_gap` shows what that information adds: a gradient-boosted classifier on the
Bayes-optimal churn logit and log days since the last event, out-of-fold (5 folds), beside the same
classifier on the logit alone (`bayes_refit`, so both carry the same fitting noise).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import load_settings
from custintel.data.generator import TRUTH_TABLE, generate_chunks, write_tables
from custintel.data.ground_truth import (
    CLAIRVOYANT_CHURN,
    CLAIRVOYANT_SPEND,
    LAST_ORDER,
    TRUE_CHURN,
    TRUE_SPEND,
    true_scores,
)
from custintel.features.point_in_time import compute_labels
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, TIMESTAMP, VALUE_LABEL
from training.metrics import holdout_metrics

SHOWN = ("churn_auc", "churn_brier", "value_spearman", "value_mae")


def _days_since_last_event(raw: Path, rows: pd.DataFrame) -> np.ndarray:
    events = pd.read_parquet(raw / "events.parquet", columns=["customer_id", "event_ts"])
    out = np.empty(len(rows))
    for snap in rows[TIMESTAMP].unique():
        here = (rows[TIMESTAMP] == snap).to_numpy()
        last = events[events["event_ts"] < snap].groupby("customer_id")["event_ts"].max()
        seen = last.reindex(rows.loc[here, ENTITY_KEY]).to_numpy()
        gap = (snap - pd.DatetimeIndex(seen)).total_seconds().to_numpy() / 86400
        out[here] = np.nan_to_num(gap, nan=1e4)  # no event yet: as if long ago
    return out


def _out_of_fold_auc(features: np.ndarray, churned: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    predicted = cross_val_predict(model, features, churned, cv=5, method="predict_proba")[:, 1]
    return round(float(roc_auc_score(churned, predicted)), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--customers", type=int, default=None, help="default: data.n_customers")
    parser.add_argument("--seed", type=int, default=None, help="default: base.seed")
    parser.add_argument("--scenario", default=None, help="default: data.scenario")
    parser.add_argument("--start", default=None, help="scenario start date, e.g. 2025-08-01")
    parser.add_argument("--all", action="store_true", help="every labelled snapshot, pooled")
    args = parser.parse_args()
    settings = load_settings(args.params)
    update = {k: v for k, v in {"n_customers": args.customers, "scenario": args.scenario,
                                "scenario_start": args.start}.items() if v is not None}
    cfg = settings.data.model_copy(update=update)
    seed = settings.base.seed if args.seed is None else args.seed
    horizon = settings.features.horizon_days
    snaps = settings.labelled_snapshots() if args.all else settings.labelled_snapshots()[-1:]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        began = time.perf_counter()
        write_tables(generate_chunks(cfg, seed), raw)
        generated = time.perf_counter() - began
        labels = compute_labels(raw, snaps, horizon, settings.snapshot_dates()[-1])
        orders = pd.read_parquet(raw / "orders.parquet", columns=["customer_id", "order_ts"])
        began = time.perf_counter()
        truth = true_scores(pd.read_parquet(raw / f"{TRUTH_TABLE}.parquet"), snaps, horizon, cfg.scenario,
                            cfg.scenario_start, orders=orders)
        scored = time.perf_counter() - began
        rows = labels.merge(truth, on=[ENTITY_KEY, TIMESTAMP], how="inner")
        assert len(rows) == len(labels)
        session_gap = _days_since_last_event(raw, rows)
    churned, spend = rows[CHURN_LABEL].to_numpy(), rows[VALUE_LABEL].to_numpy()
    order_gap = (rows[TIMESTAMP] - rows[LAST_ORDER]).dt.total_seconds().to_numpy() / 86400
    scores = {
        "bayes_optimal": (rows[TRUE_CHURN].to_numpy(), rows[TRUE_SPEND].to_numpy(), None),
        "clairvoyant": (rows[CLAIRVOYANT_CHURN].to_numpy(), rows[CLAIRVOYANT_SPEND].to_numpy(), None),
        # rank-only rules: churn score = days since; their spend columns are the Bayes-optimal ones
        "order_recency": (rows[TRUE_CHURN].to_numpy(), rows[TRUE_SPEND].to_numpy(), order_gap),
        "session_recency": (rows[TRUE_CHURN].to_numpy(), rows[TRUE_SPEND].to_numpy(), session_gap),
    }
    result = {name: {k: round(v, 4) for k, v in holdout_metrics(churned, spend, *s).items() if k in SHOWN}
              for name, s in scores.items()}
    for name in ("order_recency", "session_recency"):
        result[name] = {"churn_auc": result[name]["churn_auc"]}
    prob = np.clip(rows[TRUE_CHURN].to_numpy(), 1e-9, 1 - 1e-9)
    logit = np.log(prob / (1 - prob))[:, None]
    result["bayes_refit"] = {"churn_auc": _out_of_fold_auc(logit, churned)}
    result["bayes_plus_session_gap"] = {
        "churn_auc": _out_of_fold_auc(np.c_[logit, np.log1p(session_gap)], churned)}
    print(json.dumps({
        "customers": cfg.n_customers, "seed": seed, "scenario": cfg.scenario,
        "scenario_start": str(cfg.scenario_start) if cfg.scenario_start else None,
        "snapshots": [s.date().isoformat() for s in snaps], "rows": len(rows),
        "churn_rate": round(float(churned.mean()), 4), "generate_s": round(generated, 1),
        "true_scores_s": round(scored, 1), "metrics": result,
    }, indent=2))


if __name__ == "__main__":
    main()
