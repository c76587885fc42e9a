"""Features: point-in-time features + labels to the offline store, then Feast apply/materialize."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd

from custintel.config import Settings
from custintel.errors import UserError
from custintel.features import text
from custintel.features.point_in_time import available_tables, compute_features, compute_labels
from custintel.features.schema import TEXT, FeatureGroup, groups_by_name, groups_for_tables
from custintel.paths import DataPaths

log = logging.getLogger(__name__)
FEATURES_CODE_VERSION = 7  # bump when feature code changes its output for the same data


def build_features(settings: Settings, data_version: str, force: bool = False) -> dict:
    """Write features and labels parquet for every snapshot; reused when inputs are unchanged."""
    paths = DataPaths(settings.data_dir)
    meta_file = paths.offline / "features.json"
    key = {"data_version": data_version, "features": settings.features.model_dump(mode="json"),
           "code": FEATURES_CODE_VERSION, "text": text.settings_key(),
           "end_date": str(settings.data.end_date)}
    if not force and meta_file.is_file() and paths.features_file.is_file() and paths.labels_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("key") == key:
            log.info("features for data %s are up to date; reusing them", data_version)
            return {**meta, "reused": True}
    snapshots = settings.snapshot_dates()
    groups = groups_for_tables(available_tables(paths.clean))
    paths.offline.mkdir(parents=True, exist_ok=True)
    review_text, text_meta = None, None
    if TEXT in groups:
        review_text, text_meta = _build_review_text(paths, snapshots)
    else:  # no reviews in this data: no per-review table left from an earlier dataset
        (paths.offline / text.REVIEW_TEXT_FILE).unlink(missing_ok=True)
    features = compute_features(paths.clean, snapshots, groups, review_text=review_text)
    labels = compute_labels(paths.clean, snapshots, settings.features.horizon_days, snapshots[-1])
    features.to_parquet(paths.features_file, index=False)
    labels.to_parquet(paths.labels_file, index=False)
    _write_ground_truth(settings, paths)
    meta = {"key": key, "feature_groups": [g.name for g in groups],
            "features": list(features.columns[2:]), "feature_rows": len(features), "label_rows": len(labels),
            "snapshots": len(snapshots), "features_file": str(paths.features_file), "text": text_meta}
    meta_file.write_text(json.dumps(meta, indent=2))
    log.info("wrote %d feature rows and %d label rows", len(features), len(labels))
    return {**meta, "reused": False}


def _build_review_text(paths: DataPaths, snapshots: list) -> tuple[pd.DataFrame, dict]:
    """Sentiment and projected embedding per review (offline/review_text.parquet); the projection is
    fitted on reviews before the first snapshot, or reused from offline/text_projection.* when those
    are unchanged."""
    started = time.perf_counter()
    reviews = pd.read_parquet(paths.clean / "reviews.parquet", columns=["review_id", "review_ts", "text"])
    table, projection = text.review_text_table(reviews, snapshots[0], projection_dir=paths.offline)
    table.to_parquet(paths.offline / text.REVIEW_TEXT_FILE, index=False)
    seconds = time.perf_counter() - started
    log.info("text features of %d reviews in %.1f s", len(table), seconds)
    return table, {"reviews_with_text": len(table), "seconds": round(seconds, 2),
                   "projection": {k: projection.meta[k] for k in ("model", "package", "fit_before",
                                                                  "fit_reviews", "fingerprint")}}


def built_groups(settings: Settings) -> list[FeatureGroup]:
    """The feature groups of the features last built (those the data has tables for)."""
    meta_file = DataPaths(settings.data_dir).offline / "features.json"
    if not meta_file.is_file():
        raise UserError(f"{meta_file} is missing: run `custintel features` first.")
    return groups_by_name(json.loads(meta_file.read_text())["feature_groups"])


def _write_ground_truth(settings: Settings, paths: DataPaths) -> None:
    """True scores for the labelled snapshots, only for generated data (which records its latents):
    Bayes-optimal from the latent traits and each customer's last order before the snapshot (from
    the raw orders), and clairvoyant (also knows who is still active)."""
    from custintel.data.generator import TRUTH_TABLE
    from custintel.data.ground_truth import true_scores

    truth_file = paths.raw / f"{TRUTH_TABLE}.parquet"
    paths.ground_truth_file.unlink(missing_ok=True)
    if truth_file.is_file():
        orders = pd.read_parquet(paths.raw / "orders.parquet", columns=["customer_id", "order_ts"])
        scores = true_scores(pd.read_parquet(truth_file), settings.labelled_snapshots(),
                             settings.features.horizon_days, settings.data.scenario,
                             settings.data.scenario_start, orders=orders)
        scores.to_parquet(paths.ground_truth_file, index=False)


def feast_apply(settings: Settings) -> list[str]:
    from custintel import feature_store

    return feature_store.apply_definitions(feature_store.open_store(settings), settings)


def feast_materialize(settings: Settings, incremental: bool = False, end_date=None) -> dict:
    """Newest snapshot into the online store; `incremental`: from each view's watermark to `end_date`."""
    from custintel import feature_store

    store = feature_store.open_store(settings)
    if incremental:
        return feature_store.materialize_incremental(store, settings, end_date)
    if end_date is not None:
        raise UserError("end_date is only for incremental materialization (--incremental)")
    return feature_store.materialize_latest(store, settings)
