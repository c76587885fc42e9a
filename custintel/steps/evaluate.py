"""Evaluate: the trained model, the baselines (LightGBM, BG/NBD + Gamma-Gamma, RFM rule) and, on
generated data, the ground-truth oracle on the same time-based holdout rows -> metrics.json,
curves.json, model_card.md and its plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import Settings
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, TIMESTAMP, VALUE_LABEL
from custintel.paths import DataPaths
from custintel.runs import read_json, write_json

Scores = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # churn probability, spend, churn rank score


def oracle_scores(holdout: pd.DataFrame, ground_truth_file: Path, clairvoyant: bool = False) -> Scores | None:
    """The generator's true scores for the holdout rows (None for real data): Bayes-optimal (latent
    traits + purchase history), or with `clairvoyant` the bound that also knows who is active."""
    from custintel.data.ground_truth import CLAIRVOYANT_CHURN, CLAIRVOYANT_SPEND, TRUE_CHURN, TRUE_SPEND

    churn, spend = (CLAIRVOYANT_CHURN, CLAIRVOYANT_SPEND) if clairvoyant else (TRUE_CHURN, TRUE_SPEND)
    if not ground_truth_file.is_file():
        return None
    keys = [ENTITY_KEY, TIMESTAMP]
    rows = holdout[keys].merge(pd.read_parquet(ground_truth_file), on=keys, how="left")
    if churn not in rows or rows[churn].isna().any():
        return None
    return rows[churn].to_numpy(), rows[spend].to_numpy(), None


def bgnbd_scores(holdout: pd.DataFrame, orders_file: Path, horizon_days: int) -> Scores:
    """BG/NBD + Gamma-Gamma fitted per holdout snapshot on the order history before it."""
    from training.clv_baseline import bgnbd_gamma_gamma

    orders = pd.read_parquet(orders_file, columns=["customer_id", "order_ts", "amount"])
    churn, score, spend = (np.empty(len(holdout)) for _ in range(3))
    snapshots = pd.to_datetime(holdout[TIMESTAMP], utc=True)
    for snapshot in snapshots.unique():
        rows = np.flatnonzero(snapshots == snapshot)
        ids = holdout[ENTITY_KEY].to_numpy()[rows]
        churn[rows], score[rows], spend[rows] = bgnbd_gamma_gamma(orders, snapshot, horizon_days, ids)
    return churn, spend, score


def _segments_and_tiers(run_dir: Path, holdout: pd.DataFrame, predicted_spend: np.ndarray) -> dict:
    """The tier lift table on the holdout (the model's tiers, as served) and segment stability."""
    from training.tiers import ValueTiers, tier_report

    tiers = ValueTiers.load(run_dir / "model")
    if tiers is None:
        return {}
    segments = read_json(run_dir / "segments.json")
    migration = segments["migration"] or {}
    return {"tiers": tier_report(tiers, predicted_spend, holdout[VALUE_LABEL].to_numpy()),
            "segments": {"k": segments["k"], "ari_vs_champion": segments["ari_vs_champion"],
                         "moved_into_risky_share": migration.get("moved_into_risky_share")}}


def evaluate(settings: Settings, run_dir: Path, data_version: str) -> dict:
    from custintel.model_card import write_model_card
    from training.baselines import lightgbm_baseline, rfm_rule
    from training.metrics import holdout_curves, holdout_metrics
    from training.predictor import Predictor

    paths = DataPaths(settings.data_dir)
    holdout = pd.read_parquet(run_dir / "holdout.parquet")
    train, val = pd.read_parquet(run_dir / "train.parquet"), pd.read_parquet(run_dir / "val.parquet")
    predictor = Predictor.load(run_dir / "model")
    horizon, seed = settings.features.horizon_days, settings.base.seed
    scores: dict[str, Scores | None] = {
        "model": (*predictor.predict_arrays(holdout), None),
        "lightgbm": (*lightgbm_baseline(train, val, holdout, predictor.feature_names, seed), None),
        "bgnbd_gamma_gamma": bgnbd_scores(holdout, paths.clean / "orders.parquet", horizon),
        "rfm_rule": (*rfm_rule(holdout, horizon), None),
        "oracle": oracle_scores(holdout, paths.ground_truth_file),
        "clairvoyant": oracle_scores(holdout, paths.ground_truth_file, clairvoyant=True),
    }
    churned, spend = holdout[CHURN_LABEL], holdout[VALUE_LABEL]
    results = {name: holdout_metrics(churned, spend, s[0], s[1], s[2]) if s else None
               for name, s in scores.items()}
    curves = {name: holdout_curves(churned, spend, s[0], s[1]) for name, s in scores.items() if s}
    metrics = {
        "model": results["model"],
        "baselines": {name: results[name] for name in ("lightgbm", "bgnbd_gamma_gamma", "rfm_rule")},
        "oracle": results["oracle"],
        "clairvoyant": results["clairvoyant"],
        "holdout_snapshot": pd.Timestamp(holdout[TIMESTAMP].iloc[0]).isoformat(),
        "data_version": data_version,
        "tuning": {k: v for k, v in read_json(run_dir / "tuning.json").items() if k != "trials"},
    }
    if metrics["oracle"]:
        metrics["share_of_oracle"] = {
            k: metrics["model"][k] / metrics["oracle"][k] for k in ("churn_auc", "value_spearman")}
    metrics.update(_segments_and_tiers(run_dir, holdout, scores["model"][1]))
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "curves.json", curves)
    metrics["model_card"] = str(write_model_card(settings, run_dir, metrics, curves))
    return metrics


def finished(run_dir: Path) -> dict | None:
    """The metrics of a completed evaluation in `run_dir` (the model card is written last), else None."""
    card = run_dir / "model_card.md"
    if not (card.is_file() and (run_dir / "metrics.json").is_file()):
        return None
    return {**read_json(run_dir / "metrics.json"), "model_card": str(card)}
