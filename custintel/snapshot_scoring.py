"""Batch scoring's fast path: the newest snapshot's Arrow record batches -> scores as one Arrow table.

Equal (within float rounding) to custintel.batch_scoring.score_customers on the same rows, which
goes through pandas and the model's own `FeatureScaler` / `Segmenter.space`; here the same
formulas run on whole feature blocks instead:

- each batch becomes one (features x rows) float64 block (column copies, no row-major transpose),
  missing values 0 as in the scaler; log1p|x| is computed once (torch, vectorised) and serves both
  the model's input (the scaler's compression: sign(x) log1p|x|, or log1p of x clipped at 0 for older
  models; standardised, float32) and the segment space (signed
  log, standardised, float64, so the nearest centroid is exactly the one training would pick);
- the transform and the network (under `torch.inference_mode`) work on cache-sized blocks (`BLOCK_ROWS`),
  one block per worker thread, while a reader thread decodes the next batch;
- tiers, segment names and actions are small integer codes until the end, where the rows are put
  in revenue-at-risk order once and the string columns are built by Arrow from their few labels.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from training.scaler import SIGNED_LOG1P

FEW_VALUES = {TIMESTAMP, "value_tier", "segment_id", "segment_name", "action", "model_version"}
BLOCK_ROWS = 8_192  # rows transformed and scored at a time: the block and activations stay in cache


@dataclass
class ScoredRows:
    customer_ids: np.ndarray  # int64
    churn: np.ndarray  # float32
    spend: np.ndarray  # float32
    centroid: np.ndarray  # index into the segmenter's centroids


def feature_columns(model) -> list[str]:
    """The columns to read: the model's features, then any other feature the segmenter uses."""
    names = list(model.predictor.feature_names)
    return names + [name for name in model.segmenter.feature_names if name not in names]


class BlockTransform:
    """Feature block (float64, features x rows) -> (model input rows as float32, nearest centroid)."""

    def __init__(self, model, columns: list[str]) -> None:
        import torch

        scaler, segmenter = model.predictor.scaler, model.segmenter
        self.n_model = len(scaler.feature_names)  # the model's features come first in `columns`
        self.signed = scaler.transform_name == SIGNED_LOG1P  # else clip_log1p (models saved before it)
        self.mean = torch.as_tensor(np.asarray(scaler.mean_, dtype=np.float64))[:, None]
        self.std = torch.as_tensor(np.asarray(scaler.std_, dtype=np.float64))[:, None]
        self.segmenter = segmenter
        self.segment_rows = (None if segmenter.feature_names == columns[:self.n_model]
                             else torch.as_tensor([columns.index(n) for n in segmenter.feature_names]))
        self.segment_mean = torch.as_tensor(np.asarray(segmenter.mean, dtype=np.float64))[:, None]
        self.segment_std = torch.as_tensor(np.asarray(segmenter.std, dtype=np.float64))[:, None]

    def __call__(self, block: np.ndarray):
        import torch

        x = torch.nan_to_num_(torch.from_numpy(block), nan=0.0)  # the scaler's np.nan_to_num
        log = x.abs().log1p_()
        if self.segment_rows is None:  # sign(x) * log1p|x|, standardised (Segmenter.space)
            space = torch.copysign(log[:self.n_model], x[:self.n_model])
        else:
            rows = self.segment_rows
            space = torch.copysign(log.index_select(0, rows), x.index_select(0, rows))
        space.sub_(self.segment_mean).div_(self.segment_std)
        centroid = self.segmenter.nearest(space.numpy().T)
        if self.signed:  # FeatureScaler: sign(x) * log1p|x|
            scaled = log[:self.n_model].copysign_(x[:self.n_model])
        else:  # clip_log1p: log1p(max(x, 0))
            scaled = log[:self.n_model].masked_fill_(x[:self.n_model] < 0, 0.0)
        scaled.sub_(self.mean).div_(self.std)
        return scaled.to(torch.float32).T, centroid


def score_batches(batches: Iterable[pa.RecordBatch], model, columns: list[str], rows_bound: int,
                  workers: int | None = None) -> ScoredRows:
    """Churn, spend and nearest centroid of every row of `batches` (key, timestamp, then `columns`).

    Blocks are scored by `workers` threads (default: the cores this process may use), each running
    torch and BLAS single-threaded: the kernels release the GIL, so the cores work on different
    blocks without the synchronisation of intra-op threads (which, on a busy machine, spin waiting
    for a descheduled partner: 2.6x the CPU time measured here). At most two batches are in flight."""
    workers = workers or len(os.sched_getaffinity(0))
    transform = BlockTransform(model, columns)
    rows = ScoredRows(np.empty(rows_bound, dtype=np.int64), np.empty(rows_bound, dtype=np.float32),
                      np.empty(rows_bound, dtype=np.float32), np.empty(rows_bound, dtype=np.int64))
    n, in_flight = 0, deque()
    with single_threaded_kernels(), ThreadPoolExecutor(workers, thread_name_prefix="score") as pool:
        for batch in batches:
            values = [batch.column(j + 2).to_numpy(zero_copy_only=False) for j in range(len(columns))]
            rows.customer_ids[n:n + batch.num_rows] = batch.column(0).to_numpy(zero_copy_only=False)
            in_flight.append([pool.submit(_score_block, transform, model.predictor, values, start, n + start,
                                          rows) for start in range(0, batch.num_rows, BLOCK_ROWS)])
            n += batch.num_rows
            while len(in_flight) > 2:
                _wait(in_flight.popleft())
        while in_flight:
            _wait(in_flight.popleft())
    return ScoredRows(rows.customer_ids[:n], rows.churn[:n], rows.spend[:n], rows.centroid[:n])


def _score_block(transform: BlockTransform, predictor, values: list[np.ndarray], start: int, at: int,
                 rows: ScoredRows) -> None:
    block = np.stack([column[start:start + BLOCK_ROWS] for column in values]).astype(np.float64, copy=False)
    scaled, nearest = transform(block)
    churn, spend = predictor.predict_scaled(scaled)
    stop = at + block.shape[1]
    rows.churn[at:stop], rows.spend[at:stop], rows.centroid[at:stop] = churn.numpy(), spend.numpy(), nearest


def _wait(futures: list) -> None:
    for future in futures:
        future.result()  # re-raises a worker's exception


@contextmanager
def single_threaded_kernels():
    """torch and the BLAS/OpenMP pools at one thread each for the duration (restored after)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def scores_table(rows: ScoredRows, model, playbook: dict[str, str], snapshot: pa.Scalar | None) -> pa.Table:
    """The columns of batch_scoring.score_customers (plus model_version when the model has a tag),
    sorted by revenue at risk."""
    from custintel.batch_scoring import suggested_action
    from training.tiers import INACTIVE

    segmenter = model.segmenter
    segment_names = [segmenter.names[int(i)] for i in segmenter.ids]
    risk = rows.churn * rows.spend
    order = np.argsort(-risk, kind="stable")
    centroid, spend, n = rows.centroid[order], rows.spend[order], len(order)
    columns = {ENTITY_KEY: pa.array(rows.customer_ids[order])}
    if snapshot is not None:  # every row is of the newest snapshot
        columns[TIMESTAMP] = pa.repeat(snapshot, n)
    columns.update({
        "churn_probability": pa.array(rows.churn[order]), "predicted_spend": pa.array(spend),
        "value_tier": _labels(model.tiers.codes(spend), [INACTIVE, *model.tiers.names]),
        "segment_id": pa.array(np.asarray(segmenter.ids, dtype=np.int64)[centroid]),
        "segment_name": _labels(centroid, segment_names), "revenue_at_risk": pa.array(risk[order]),
        "action": _labels(centroid, [suggested_action(name, playbook) for name in segment_names])})
    if model.tag is not None:
        columns["model_version"] = pa.repeat(pa.scalar(model.tag, pa.string()), n)
    return pa.table(columns)


def write_scores(table: pa.Table, out) -> None:
    """Write `table` as parquet; dictionary pages only for the columns of few distinct values (the
    floats and customer ids would only be hashed to fall back to plain encoding)."""
    import pyarrow.parquet as pq

    few = [name for name in table.column_names if name in FEW_VALUES]
    pq.write_table(table, out, use_dictionary=few)


def _labels(codes: np.ndarray, labels: list[str]) -> pa.Array:
    """A string column from each row's index into a few `labels` (built in Arrow, not per row in Python)."""
    import pyarrow.compute as pc

    return pc.take(pa.array(labels, pa.string()), pa.array(codes, pa.int32()))
