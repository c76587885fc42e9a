"""Batch scoring: every customer of the newest offline snapshot scored by a registered model, in one
vectorised pass, into one parquet file.

    custintel score-batch --out scores.parquet [--model-tag TAG]    # or the Prefect flow score-batch

Per customer: churn probability, predicted spend, value tier, segment id and name, revenue at risk
(churn x spend) and the playbook's action, sorted by revenue at risk; the model version and the
snapshot are in every row. The model's artifacts are checked against their recorded SHA-256 first.

Two paths give the same scores: `score_snapshot` (the CLI and flow) streams the snapshot's record
batches through custintel.snapshot_scoring (block transform, worker threads, Arrow output), and
`score_customers` scores a DataFrame in chunks of `chunk_rows` with the model's own pandas-level
transforms; training (custintel.steps.segment) builds its scores.parquet with the latter, and the
tests check the former against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import Settings
from custintel.errors import UserError
from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from custintel.snapshot_batches import BATCH_ROWS

CHUNK_ROWS = 65_536


def suggested_action(segment_name: str, playbook: dict[str, str]) -> str:
    """The action of the longest playbook key that starts the segment name ('default' otherwise)."""
    keys = [k for k in playbook if k != "default" and segment_name.startswith(k)]
    return playbook[max(keys, key=len)] if keys else playbook.get("default", "no action")


@dataclass
class ScoringModel:
    predictor: object  # training.predictor.Predictor
    tiers: object  # training.tiers.ValueTiers
    segmenter: object  # training.segments.Segmenter
    tag: str | None = None

    @classmethod
    def load(cls, tag: str) -> ScoringModel:
        from custintel import registry
        from training.predictor import Predictor
        from training.segments import Segmenter
        from training.tiers import ValueTiers

        directory = registry.verified_model_path(tag)
        tiers, segmenter = ValueTiers.load(directory), Segmenter.load(directory)
        if tiers is None or segmenter is None:
            raise UserError(f"Model {tag} has no value tiers or segments saved with it; retrain it with "
                            "`custintel retrain` to batch-score with this version.")
        return cls(Predictor.load(directory).freeze(), tiers, segmenter, tag)


def read_latest_snapshot(features_file: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of the newest snapshot of the offline feature table as a DataFrame (only that
    snapshot is decoded: a row-group filter on the timestamp)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from custintel.snapshot_batches import check_columns

    check_columns(features_file, columns)
    newest = pc.max(pq.read_table(features_file, columns=[TIMESTAMP])[TIMESTAMP])
    wanted = None if columns is None else [ENTITY_KEY, TIMESTAMP, *columns]
    table = pq.read_table(features_file, columns=wanted, filters=pc.field(TIMESTAMP) == newest)
    return table.to_pandas(split_blocks=True, self_destruct=True)


def score_customers(customers: pd.DataFrame, model: ScoringModel, playbook: dict[str, str],
                    churn: np.ndarray | None = None, spend: np.ndarray | None = None,
                    chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Scores of every row of `customers` (customer_id, event_timestamp and the model's features),
    sorted by revenue at risk. `churn` / `spend`: predictions already made for these rows."""
    n = len(customers)
    if churn is None or spend is None:
        parts = [model.predictor.predict_arrays(customers.iloc[start:start + chunk_rows])
                 for start in range(0, n, chunk_rows)] or [(np.empty(0, np.float32), np.empty(0, np.float32))]
        churn, spend = (np.concatenate(column) for column in zip(*parts, strict=True))
    segment_ids = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk_rows):
        block = customers.iloc[start:start + chunk_rows]
        segment_ids[start:start + chunk_rows] = model.segmenter.assign(block)
    present, codes = np.unique(segment_ids, return_inverse=True)
    names = np.asarray([model.segmenter.names[int(i)] for i in present], dtype=object)
    actions = np.asarray([suggested_action(name, playbook) for name in names], dtype=object)
    risk = churn * spend
    order = np.argsort(-risk, kind="stable")
    codes = codes.reshape(-1)[order]
    columns = {ENTITY_KEY: customers[ENTITY_KEY].to_numpy()[order]}
    if TIMESTAMP in customers:
        columns[TIMESTAMP] = customers[TIMESTAMP].take(order).reset_index(drop=True)
    columns.update({"churn_probability": churn[order], "predicted_spend": spend[order],
                    "value_tier": model.tiers.assign(spend[order]), "segment_id": segment_ids[order],
                    "segment_name": names[codes], "revenue_at_risk": risk[order], "action": actions[codes]})
    return pd.DataFrame(columns)


def score_snapshot(features_file: Path, model: ScoringModel, playbook: dict[str, str], out: Path,
                   batch_rows: int = BATCH_ROWS) -> dict:
    """Score the newest snapshot and write `out` (parquet), streaming: each record batch of the
    snapshot is decoded while the previous one is scored (custintel.snapshot_batches and
    custintel.snapshot_scoring; the same scores as `score_customers`). Returns a summary with timings."""
    from custintel.snapshot_batches import NewestSnapshot
    from custintel.snapshot_scoring import feature_columns, score_batches, scores_table, write_scores

    started = time.perf_counter()
    columns = feature_columns(model)
    snapshot = NewestSnapshot.open(features_file, columns)
    rows = score_batches(snapshot.batches(columns, batch_rows), model, columns, snapshot.rows_bound)
    table = scores_table(rows, model, playbook, snapshot.newest)
    score_s = time.perf_counter() - started
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_scores(table, out)
    seconds = time.perf_counter() - started
    newest = None if snapshot.newest is None or not len(table) else str(pd.Timestamp(snapshot.newest.as_py()))
    return {"out": str(out), "customers": len(table), "model_version": model.tag, "snapshot": newest,
            "seconds": round(seconds, 3), "read_and_score_s": round(score_s, 3),
            "write_s": round(seconds - score_s, 3),
            "customers_per_s": round(len(table) / seconds) if seconds > 0 else None}


def score_batch(settings: Settings, out: Path, model_tag: str | None = None) -> dict:
    """Score every current customer with the champion (or `model_tag`) into `out`."""
    from custintel import registry
    from custintel.paths import DataPaths

    paths = DataPaths(settings.data_dir)
    tag = model_tag or registry.champion_tag(paths)
    if tag is None:
        raise UserError("No champion model yet: run `custintel retrain`, or pass --model-tag.")
    return score_snapshot(paths.features_file, ScoringModel.load(tag), settings.playbook, out)
