"""Fast, idempotent Feast materialization: offline parquet -> online store, chunk by chunk.

Stock `FeatureStore.materialize` reads the whole window through Dask, builds one protobuf per
value and upserts one SQLite row per statement (about 2,000 rows/s here, GBs of memory for 200k
rows). This module does the same job with the same result:

1. per offline source, read the parquet file with pyarrow in two passes, `chunk_rows` rows at a
   time: the keys and timestamps, to pick the newest row per entity with start <= event_timestamp
   <= end (Feast's window, both ends included; ties broken by the created timestamp, if any;
   row groups whose timestamp statistics lie outside the window are not read), then the needed
   columns of the row groups that hold picked rows;
2. write those rows `chunk_rows` entities at a time, in the byte order of the serialised keys:
   entity keys and values are serialised the way Feast does (checked against Feast's own
   conversion on every chunk), then written by one `INSERT ... SELECT` per view (SQLite, in a
   writer thread; into empty tables, about half the views through a staging file written by a
   second thread, see custintel.sqlite_staging), by RESP commands laid out with numpy (Redis: HSETs,
   or into a database with no keys one RESTORE of each entity's whole hash, see
   custintel.redis_payloads) or by the store's `online_write_batch` (any other store), byte for
   byte what stock materialization stores;
3. only when every chunk of a view is written, record the interval in the registry
   (`registry.apply_materialization`, as Feast does), which is the watermark that
   `materialize_incremental` starts from.

Rewriting a window writes the same values again, so a run that died half-way is repaired by
running it again: its interval was never recorded, so the incremental rerun covers it again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custintel import redis_payloads
from custintel.errors import UserError

log = logging.getLogger(__name__)
_CHECK_ROWS = 32  # rows per chunk whose fast serialisation is compared with Feast's own
_ROWS_PER_STATEMENT = 50
_RESTORE_ROWS = 10_000  # entities per RESTORE batch (about 10 MB of commands with 45 features)


@dataclass
class _SourceJob:
    """Views that read the same offline source over the same window."""

    path: str
    timestamp_field: str
    created_field: str | None
    field_mapping: dict[str, str]
    join_keys: list[str]
    start: datetime
    end: datetime
    views: list = field(default_factory=list)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def check_end_date(end_date: datetime, now: datetime | None = None) -> datetime:
    """Refuse an end date in the future: the watermark would pass rows that have not arrived yet."""
    end_date, now = _utc(end_date), _utc(now or datetime.now(UTC))
    if end_date > now:
        raise UserError(f"end_date {end_date.isoformat()} is in the future (now is {now.isoformat()}); "
                        "materialize up to now at the latest, or rows that arrive later for the time up "
                        "to end_date would never be loaded by incremental materialization.")
    return end_date


def online_views(store, names: Sequence[str] | None = None) -> list:
    views = [view for view in store.list_feature_views() if view.online]
    if names is not None:
        known = {view.name for view in views}
        missing = sorted(set(names) - known)
        if missing:
            raise UserError(f"feature views {missing} are not registered (online views: {sorted(known)})")
        views = [view for view in views if view.name in set(names)]
    return views


def materialize(store, start_date: datetime, end_date: datetime, views: Sequence[str] | None = None,
                chunk_rows: int = 50_000, sqlite_sync: str = "full") -> dict:
    """Like `store.materialize(start_date, end_date)`, fast. Returns the window per view.
    `sqlite_sync` is SQLite's `synchronous` setting while this writes (see _SqliteWriter)."""
    start, end = _utc(start_date), check_end_date(end_date)
    if start > end:
        raise UserError(f"start_date {start.isoformat()} is after end_date {end.isoformat()}")
    return _run(store, [(view, start) for view in online_views(store, views)], end, chunk_rows, sqlite_sync)


def materialize_incremental(store, end_date: datetime, views: Sequence[str] | None = None,
                            chunk_rows: int = 50_000, sqlite_sync: str = "full") -> dict:
    """Like `store.materialize_incremental(end_date)`: each view from its watermark (the end of its
    newest recorded interval) to `end_date`; a view never materialized starts one TTL before
    `end_date` (Feast starts one TTL before now; the data here is historical)."""
    end = check_end_date(end_date)
    plan = []
    for view in online_views(store, views):
        watermark = view.most_recent_end_time
        if watermark is None:
            if not view.ttl:
                raise UserError(f"feature view {view.name} has no TTL and was never materialized: "
                                "run a full materialization first")
            start = end - view.ttl
        else:
            start = min(_utc(watermark), end)
        plan.append((view, start))
    return _run(store, plan, end, chunk_rows, sqlite_sync)


def _run(store, plan: list[tuple], end: datetime, chunk_rows: int, sqlite_sync: str = "full") -> dict:
    jobs: dict[tuple, _SourceJob] = {}
    for view, start in plan:
        source = view.batch_source
        path = _source_path(store, source)
        mapping = dict(source.field_mapping or {})
        join_keys = [column.name for column in view.entity_columns]
        key = (path, source.timestamp_field, source.created_timestamp_column or None,
               tuple(sorted(mapping.items())), tuple(join_keys), start)
        job = jobs.get(key)
        if job is None:
            job = jobs[key] = _SourceJob(path, source.timestamp_field, key[2], mapping, join_keys, start, end)
        job.views.append(view)
    writer = _writer_for(store, sqlite_sync)
    try:
        return _write_jobs(store, writer, list(jobs.values()), chunk_rows)
    finally:
        writer.close()  # a write still running finishes (or fails) before this returns or raises


def _write_jobs(store, writer, jobs: list[_SourceJob], chunk_rows: int) -> dict:
    summary = {}
    for job in jobs:
        rows = newest_rows(job, chunk_rows)
        writer.begin(job.views)
        order = _key_order(rows, job.join_keys)
        for offset in range(0, rows.num_rows, chunk_rows):
            chunk = rows.take(pa.array(order[offset:offset + chunk_rows]))
            if chunk.num_rows:
                _write_chunk(writer, job, chunk)
        writer.wait()  # every chunk is in the store before the interval is recorded
        for view in job.views:
            store.registry.apply_materialization(view, store.project, job.start, job.end, commit=True)
            summary[view.name] = {"start": job.start.isoformat(), "end": job.end.isoformat(),
                                  "rows": rows.num_rows}
        log.info("materialized %d entities into %s for %s", rows.num_rows,
                 [view.name for view in job.views], (job.start.isoformat(), job.end.isoformat()))
    return summary


def _key_order(rows: pa.Table, join_keys: list[str]) -> np.ndarray:
    """The order to write `rows` in. One integer join key: the byte order of its little-endian value,
    which is the order of Feast's serialised keys (prefix + 8 bytes LE), so that every chunk's keys
    come after the previous chunk's and the online store's B-trees grow by appends."""
    if len(join_keys) != 1 or not pa.types.is_integer(rows[join_keys[0]].type):
        return np.arange(rows.num_rows)
    values = rows[join_keys[0]].to_numpy(zero_copy_only=False).astype("<i8")
    return np.argsort(values.view(">u8"), kind="stable")


def _source_path(store, source) -> str:
    path = Path(source.path)
    if not path.is_absolute() and store.repo_path is not None:
        path = Path(store.repo_path) / path
    return str(path)


def _write_chunk(writer, job: _SourceJob, chunk: pa.Table) -> None:
    """Write one chunk of newest rows into every view of `job` (a seam for crash tests)."""
    writer.write_views(job.views, job.join_keys, job.timestamp_field, job.created_field, chunk)


# ---------------------------------------------------------------- reading: newest row per entity


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch, UTC (naive ones are taken as UTC)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
    else:
        column = pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return column.to_numpy(zero_copy_only=False)


def _newest_per_key(table: pa.Table, join_keys: list[str], ts: str, created: str | None) -> pa.Table:
    """One row per entity: the newest event timestamp (then created timestamp) wins."""
    if table.num_rows == 0:
        return table
    order_columns = [table[key].to_numpy(zero_copy_only=False) for key in join_keys]
    order = np.lexsort([*([-_micros(table[created])] if created else []), -_micros(table[ts]),
                        *reversed(order_columns)])
    first = np.zeros(table.num_rows, dtype=bool)
    first[0] = True
    for column in order_columns:
        sorted_column = column[order]
        first[1:] |= sorted_column[1:] != sorted_column[:-1]
    return table.take(pa.array(order[first]))


def newest_rows(job: _SourceJob, chunk_rows: int) -> pa.Table:
    """Newest row per entity with start <= timestamp <= end, in file order, in two passes over the
    parquet file, `chunk_rows` rows at a time: first only the keys and timestamps, to pick each
    entity's row, then every needed column of the picked rows.

    Memory stays at one chunk plus one row per entity."""
    inverse = {feature: column for column, feature in job.field_mapping.items()}
    features = list(dict.fromkeys(f.name for view in job.views for f in view.features))
    picking = [*job.join_keys, job.timestamp_field, *([job.created_field] if job.created_field else [])]
    wanted = [*picking, *features]
    source_columns = [inverse.get(name, name) for name in wanted]
    parquet = pq.ParquetFile(job.path)
    missing = [name for name in source_columns if name not in parquet.schema_arrow.names]
    if missing:
        raise UserError(f"offline source {job.path} lacks the columns {missing} that the feature views "
                        f"{[view.name for view in job.views]} need: rebuild the features, then feast-apply")
    start_us = int(job.start.timestamp() * 1_000_000)
    end_us = int(job.end.timestamp() * 1_000_000)
    best: pa.Table | None = None
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.metadata.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    for group in range(len(sizes)):
        if not _may_hold(parquet, group, source_columns[len(job.join_keys)], start_us, end_us):
            continue
        offset = int(starts[group])
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group],
                                          columns=source_columns[:len(picking)]):
            table = pa.Table.from_batches([batch]).rename_columns(picking)
            table = table.append_column(_ROW, pa.array(np.arange(offset, offset + table.num_rows)))
            offset += table.num_rows
            stamps = _micros(table[job.timestamp_field])
            table = table.filter(pa.array((stamps >= start_us) & (stamps <= end_us)))
            if table.num_rows == 0:
                continue
            if best is not None:
                table = pa.concat_tables([best, table.cast(best.schema)])
            # ties: the earlier row wins (lexsort is stable, earlier rows come first)
            best = _newest_per_key(table, job.join_keys, job.timestamp_field, job.created_field)
    picked = np.sort(best[_ROW].to_numpy()) if best is not None else np.zeros(0, dtype=np.int64)
    parts = []
    for group in range(len(sizes)):  # only the row groups holding picked rows
        offset = int(starts[group])
        lo, hi = np.searchsorted(picked, [offset, offset + sizes[group]])
        if hi == lo:
            continue
        for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=source_columns):
            lo, hi = np.searchsorted(picked, [offset, offset + batch.num_rows])
            if hi > lo:
                parts.append(batch.take(pa.array(picked[lo:hi] - offset)))
            offset += batch.num_rows
    if not parts:
        return parquet.schema_arrow.empty_table().select(source_columns).rename_columns(wanted)
    return pa.Table.from_batches(parts).rename_columns(wanted).combine_chunks()


_ROW = "__custintel_row"
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1_000}


def _may_hold(parquet: pq.ParquetFile, group: int, ts_column: str, start_us: int, end_us: int) -> bool:
    """False only when the row group's timestamp statistics put all of it outside [start, end]."""
    kind = parquet.schema_arrow.field(ts_column).type
    row_group = parquet.metadata.row_group(group)
    chunks = [row_group.column(i) for i in range(row_group.num_columns)
              if row_group.column(i).path_in_schema == ts_column]
    if not pa.types.is_timestamp(kind) or len(chunks) != 1 or chunks[0].physical_type != "INT64":
        return True
    stats = chunks[0].statistics
    if stats is None or not stats.has_min_max:
        return True
    low, high = stats.min_raw, stats.max_raw
    if kind.unit in _MICROS_PER_UNIT:
        low, high = low * _MICROS_PER_UNIT[kind.unit], high * _MICROS_PER_UNIT[kind.unit]
    elif kind.unit == "ns":
        low, high = low // 1000, -(-high // 1000)
    return not (high < start_us or low > end_us)


# ---------------------------------------------------------------- serialisation, checked against Feast


def _feast_rows(view, join_keys: list[str], chunk: pa.Table) -> list:
    """Feast's own conversion (what stock materialization writes) of `chunk`."""
    from feast.utils import _convert_arrow_to_proto

    value_types = {column.name: column.dtype.to_value_type() for column in view.entity_columns}
    columns = [*join_keys, view.batch_source.timestamp_field,
               *([view.batch_source.created_timestamp_column]
                 if view.batch_source.created_timestamp_column else []),
               *[f.name for f in view.features]]
    return _convert_arrow_to_proto(chunk.select(columns), view, value_types)


def _entity_keys(view, join_keys: list[str], chunk: pa.Table, version: int) -> list[bytes]:
    """Serialised entity keys; one INT64 join key is done by template, anything else per row by Feast."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.value_type import ValueType

    value_types = {column.name: column.dtype.to_value_type() for column in view.entity_columns}
    if len(join_keys) == 1 and value_types[join_keys[0]] == ValueType.INT64:
        probe = np.int64(0x0102030405060708)
        template = serialize_entity_key(EntityKey(join_keys=join_keys, entity_values=[Value(
            int64_val=int(probe))]), entity_key_serialization_version=version)
        suffix = probe.astype("<i8").tobytes()
        if template.endswith(suffix):
            prefix = template[: -len(suffix)]
            raw = chunk[join_keys[0]].to_numpy(zero_copy_only=False).astype("<i8").tobytes()
            return [prefix + raw[i:i + 8] for i in range(0, len(raw), 8)]
    return [serialize_entity_key(key, entity_key_serialization_version=version)
            for key, _, _, _ in _feast_rows(view, join_keys, chunk)]


@dataclass
class _Packed:
    """Serialised ValueProtos of one Float64/Float32 feature, fixed width: row i is
    raw[i * width:(i + 1) * width], except null rows, which Feast writes as b"" (an empty Value)."""

    raw: bytes
    width: int
    nulls: np.ndarray

    def __getitem__(self, row: int) -> bytes:
        return b"" if self.nulls[row] else self.raw[row * self.width:(row + 1) * self.width]

    def blobs(self) -> list[bytes]:
        raw, step = self.raw, self.width
        return [b"" if null else raw[i * step:(i + 1) * step] for i, null in enumerate(self.nulls.tolist())]


def _value_blobs(view, chunk: pa.Table) -> dict[str, _Packed | list[bytes]]:
    """Serialised ValueProto per feature: Float64/Float32 packed by template (null -> empty Value),
    any other type as a list by Feast's own conversion."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float32, Float64

    blobs: dict[str, _Packed | list[bytes]] = {}
    slow = []
    for feature in view.features:
        if feature.dtype in (Float64, Float32):
            kind, width, attr = (("<f8", 8, "double_val") if feature.dtype == Float64
                                 else ("<f4", 4, "float_val"))
            template = Value(**{attr: 1.5}).SerializeToString()
            tag = template[:-width]
            column = chunk[feature.name]
            values = column.to_numpy(zero_copy_only=False).astype(kind)
            nulls = column.is_null(nan_is_null=pa.types.is_floating(column.type)).to_numpy(
                zero_copy_only=False)
            packed = np.empty(len(values), dtype=[("tag", f"S{len(tag)}"), ("value", kind)])
            packed["tag"], packed["value"] = tag, values
            blobs[feature.name] = _Packed(packed.tobytes(), packed.dtype.itemsize, nulls)
        else:
            slow.append(feature.name)
    if slow:
        rows = _feast_rows(view, [c.name for c in view.entity_columns], chunk)
        for name in slow:
            blobs[name] = [values[name].SerializeToString() for _, values, _, _ in rows]
    return blobs


def _blob_lists(blobs: dict[str, _Packed | list[bytes]]) -> dict[str, list[bytes]]:
    return {name: b.blobs() if isinstance(b, _Packed) else b for name, b in blobs.items()}


def _check_against_feast(view, join_keys: list[str], chunk: pa.Table, keys: list[bytes],
                         blobs: dict[str, _Packed | list[bytes]], version: int) -> None:
    """The fast serialisation must equal Feast's for a sample of rows (nulls included)."""
    from feast.infra.key_encoding_utils import serialize_entity_key

    null_mask = np.zeros(chunk.num_rows, dtype=bool)
    for f in view.features:
        column = chunk[f.name]
        nan_aware = pa.types.is_floating(column.type)
        null_mask |= column.is_null(nan_is_null=nan_aware).to_numpy(zero_copy_only=False)
    nulls = np.flatnonzero(null_mask)[:_CHECK_ROWS // 2].tolist()
    sample = sorted(set(range(min(_CHECK_ROWS, chunk.num_rows))) | set(nulls))
    expected = _feast_rows(view, join_keys, chunk.take(pa.array(sample)))
    for row, (key, values, _, _) in zip(sample, expected, strict=True):
        if serialize_entity_key(key, entity_key_serialization_version=version) != keys[row]:
            raise RuntimeError(f"entity key of row {row} differs from Feast's serialisation")
        for name, value in values.items():
            if value.SerializeToString() != blobs[name][row]:
                raise RuntimeError(f"{view.name}.{name} of row {row} differs from Feast's serialisation")


@dataclass
class _Serialised:
    keys: list[bytes]
    blobs: dict[str, _Packed | list[bytes]]
    micros: np.ndarray
    created_micros: np.ndarray | None


def _serialise(view, join_keys, ts, created, chunk, version) -> _Serialised:
    keys = _entity_keys(view, join_keys, chunk, version)
    blobs = _value_blobs(view, chunk)
    _check_against_feast(view, join_keys, chunk, keys, blobs, version)
    return _Serialised(keys, blobs, _micros(chunk[ts]), _micros(chunk[created]) if created else None)


# ---------------------------------------------------------------- writers


def _writer_for(store, sqlite_sync: str = "full") -> Callable:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    config = store.config
    online = config.online_store
    plain_sqlite = (isinstance(online, SqliteOnlineStoreConfig) and not online.vector_enabled
                    and not getattr(online, "enable_openai_compatible_store", False))
    if plain_sqlite:
        return _SqliteWriter(store, sqlite_sync)
    if isinstance(online, RedisOnlineStoreConfig) and online.redis_type == RedisType.redis:
        return _RedisWriter(store)
    return _BatchApiWriter(store)


class _Writer:
    """Writes run in the caller's thread unless a writer overlaps them with preparing the next."""

    def begin(self, views: list) -> None:
        """A job writing `views` starts (its chunks follow, then `wait`)."""

    def write_views(self, views: list, join_keys: list[str], ts: str, created: str | None,
                    chunk: pa.Table) -> None:
        """Write one chunk of rows into every one of `views` (by default one view at a time)."""
        for view in views:
            self(view, join_keys, ts, created, chunk)

    def wait(self) -> None:
        """Return when every write submitted so far is done (raise its error if one failed)."""

    def close(self) -> None:
        self.wait()


class _BackgroundWriter(_Writer):
    """Writes run in background threads, one per lane, in the order submitted within a lane, while
    the caller prepares the next ones (SQLite and socket I/O release the GIL)."""

    def __init__(self) -> None:
        self.pools: dict[str, ThreadPoolExecutor] = {}
        self.pending: dict[str, list[Future]] = {}

    def _submit(self, lane: str, write: Callable, *args) -> None:
        """Queue a write in `lane`: at most one more than the one running, so that preparing one
        lane's next write never waits for another lane."""
        queued = self.pending.setdefault(lane, [])
        while len(queued) >= 2:
            queued.pop(0).result()
        if lane not in self.pools:
            self.pools[lane] = ThreadPoolExecutor(1, thread_name_prefix=f"custintel-writer-{lane}")
        queued.append(self.pools[lane].submit(write, *args))

    def _finish_writes(self) -> None:
        """Wait for every queued write (all of them, even after one failed); raise the first error."""
        error = None
        for queued in self.pending.values():
            while queued:
                try:
                    queued.pop(0).result()
                except BaseException as failure:  # noqa: BLE001 - re-raised below
                    error = error or failure
        if error is not None:
            raise error

    def wait(self) -> None:
        self._finish_writes()

    def close(self) -> None:
        """After the last `wait`, or after a failure."""
        try:
            self._finish_writes()
        finally:
            for pool in self.pools.values():
                pool.shutdown()
            self.pools.clear()


class _BatchApiWriter(_Writer):
    """Any online store: Feast's conversion and the store's `online_write_batch`."""

    def __init__(self, store):
        self.store = store
        self.provider = store._get_provider()

    def __call__(self, view, join_keys, ts, created, chunk) -> None:
        self.provider.online_write_batch(self.store.config, view, _feast_rows(view, join_keys, chunk), None)


class _SqliteWriter(_BackgroundWriter):
    """The upsert Feast's SqliteOnlineStore.online_write_batch runs, one statement per view and chunk
    where every feature is a float of one width (`_bulk_upsert`), else one multi-row executemany.

    Each write (one transaction) runs in a writer thread while the caller prepares the next one:
    SQLite releases the GIL while it works. A job's views whose tables are empty when it starts are
    split into two lanes of about equal size (`begin`): one writes into the store, the other into a
    staging file on a second thread, copied into the store by SQLite's transfer optimisation when
    the job's writes are done (custintel.sqlite_staging). Each view's writes run in order in one lane.

    `sync` is SQLite's `synchronous` while this writes, restored at close: "full" (SQLite's and
    Feast's default: each commit waits until the disk has the data) or "off" (commits return once
    the OS has the data; a killed process loses nothing, but an OS crash or power cut during the
    load can corrupt the file: then delete it and materialize again)."""

    def __init__(self, store, sync: str = "full"):
        if sync not in _SYNC_MODES:
            raise UserError(f"feature_store.sqlite_sync is {sync!r}: use one of {sorted(_SYNC_MODES)}")
        super().__init__()
        self.store = store
        self.online_store = store._get_provider().online_store
        self.staging = None  # custintel.sqlite_staging.Staging of the current job, if any
        self.sync, self.restore = sync, None

    def _table(self, view) -> str:
        from feast.infra.online_stores.sqlite import _table_id

        config = self.store.config
        return _table_id(config.project, view, config.registry.enable_online_feature_view_versioning)

    def begin(self, views: list) -> None:
        """Stage about half (by feature count) of the views whose tables are empty, the other half
        going straight into the store; nothing when fewer than two are empty or there is one core."""
        from custintel import sqlite_staging

        conn = self.online_store._get_conn(self.store.config)
        empty = [view for view in views if sqlite_staging.is_empty(conn, self._table(view))]
        if len(empty) < 2 or (os.cpu_count() or 1) < 2:
            return
        lanes: dict[str, list] = {"store": [], "staging": []}
        for view in sorted(empty, key=lambda v: -len(v.features)):  # the larger views first
            lane = min(lanes, key=lambda name: sum(len(v.features) for v in lanes[name]))
            lanes[lane].append(view)
        db_path = Path(self.online_store._get_db_path(self.store.config))
        self.staging = sqlite_staging.Staging(conn, db_path, [self._table(v) for v in lanes["staging"]])

    def wait(self) -> None:
        self._finish_writes()
        staging, self.staging = self.staging, None
        if staging is not None:
            try:
                staging.copy_into(self.online_store._get_conn(self.store.config), _UPSERT)
            finally:
                staging.discard()

    def close(self) -> None:
        """After the last `wait`, or after a failure: then staged rows are not copied."""
        try:
            super().close()
        finally:
            if self.staging is not None:
                self.staging.discard()
                self.staging = None
            if self.restore is not None:
                self.online_store._get_conn(self.store.config).execute(f"PRAGMA synchronous = {self.restore}")
                self.restore = None

    def __call__(self, view, join_keys, ts, created, chunk) -> None:
        from feast.infra.online_stores.sqlite import _quote_id

        config = self.store.config
        if self.restore is None:
            conn = self.online_store._get_conn(config)
            self.restore = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            conn.execute(f"PRAGMA synchronous = {_SYNC_MODES[self.sync]}")
        data = _serialise(view, join_keys, ts, created, chunk, config.entity_key_serialization_version)
        table_name = self._table(view)
        table = _quote_id(table_name)
        event_ts = _sqlite_epochs(data.micros)
        created_ts = _sqlite_epochs(data.created_micros) if data.created_micros is not None else None
        names = sorted(feature.name for feature in view.features)  # rows in primary-key order
        staged = self.staging is not None and table_name in self.staging.tables
        lane = "staging" if staged else "store"
        conn = self.staging.conn if staged else self.online_store._get_conn(config)
        packed = [data.blobs[name] for name in names]
        widths = {p.width for p in packed if isinstance(p, _Packed)}
        one_width = len(widths) == 1 and all(isinstance(p, _Packed) for p in packed)
        if one_width and len({len(k) for k in data.keys}) == 1:
            statement = _bulk_upsert(table, names, chunk, data, packed, event_ts, created_ts)
            self._submit(lane, _execute, conn, *statement)
            return
        blobs = _blob_lists(data.blobs)
        texts = {feature.name: _value_texts(chunk[feature.name], feature.dtype) for feature in view.features}
        created_ts = created_ts or [None] * len(data.keys)
        rows = [(data.keys[i], name, blobs[name][i], texts[name][i], event_ts[i], created_ts[i])
                for i in sorted(range(len(data.keys)), key=data.keys.__getitem__) for name in names]
        # many rows per statement: SQLite's per-statement cost dominates a one-row upsert
        full = len(rows) - len(rows) % _ROWS_PER_STATEMENT
        many = (f"INSERT INTO {table} {_COLUMNS} VALUES "
                f"{', '.join(['(?, ?, ?, ?, ?, ?)'] * _ROWS_PER_STATEMENT)} {_UPSERT}")
        one = f"INSERT INTO {table} {_COLUMNS} VALUES (?, ?, ?, ?, ?, ?) {_UPSERT}"
        statements = [(many, [tuple(chain.from_iterable(rows[i:i + _ROWS_PER_STATEMENT]))
                              for i in range(0, full, _ROWS_PER_STATEMENT)]), (one, rows[full:])]
        self._submit(lane, _execute_many, conn, statements)


_SYNC_MODES = {"full": 2, "off": 0}  # SQLite's PRAGMA synchronous values


def _execute(conn, sql: str, params: tuple) -> None:
    with conn:  # one transaction
        conn.execute(sql, params)


def _execute_many(conn, statements: list[tuple[str, list]]) -> None:
    with conn:  # one transaction
        for sql, rows in statements:
            conn.executemany(sql, rows)


_COLUMNS = "(entity_key, feature_name, value, value_text, event_ts, created_ts)"
_UPSERT = ("ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
           "value_text = excluded.value_text, event_ts = excluded.event_ts, "
           "created_ts = excluded.created_ts;")
_EPOCH_DIGITS = 21  # a signed 64-bit integer, zero-padded


def _bulk_upsert(table: str, names: list[str], chunk: pa.Table, data: _Serialised, packed: list[_Packed],
                 event_ts: list[int], created_ts: list[int] | None) -> tuple[str, tuple]:
    """(sql, parameters) of one INSERT ... SELECT for the chunk: SQLite itself makes the (entity,
    feature) rows, in primary-key order, from a few bound parameters (no Python object per row):

    - ?1 the entity keys concatenated (one width), ?2 the value blobs entity-major (one width),
    - ?3 / ?4 event / created epochs as zero-padded decimals (blobs: substr is then by byte offset),
    - ?5 a JSON array of the value texts (null for a null value), entity-major, which `json_each`
      walks: its index j is entity j / F, feature j % F.

    Rows go in in key order, so their B-tree inserts are appends where the keys are new."""
    n, f = len(data.keys), len(names)
    order = sorted(range(n), key=data.keys.__getitem__)
    width, key_width = packed[0].width, len(data.keys[0])
    take = np.asarray(order, dtype=np.int64)
    keys = b"".join([data.keys[i] for i in order])
    cells = np.stack([np.frombuffer(p.raw, dtype=f"S{width}")[take] for p in packed], axis=1)
    texts = _json_texts([chunk[name] for name in names], take, float32=width == 5)

    def epochs(values: list[int]) -> bytes:  # a blob: substr of a blob counts bytes, of text characters
        distinct, inverse = np.unique(np.asarray(values, dtype=np.int64)[take], return_inverse=True)
        texts = np.array([f"{v:0{_EPOCH_DIGITS}d}".encode("ascii") for v in distinct.tolist()],
                         dtype=f"S{_EPOCH_DIGITS}")
        return texts[inverse.reshape(-1)].tobytes()

    names_case = " ".join(f"WHEN {j} THEN '{name.replace(chr(39), chr(39) * 2)}'"
                          for j, name in enumerate(names))
    created_sql = (f"CAST(substr(?4, (key / {f}) * {_EPOCH_DIGITS} + 1, {_EPOCH_DIGITS}) AS INTEGER)"
                   if created_ts is not None else "NULL")
    sql = (f"INSERT INTO {table} {_COLUMNS} "
           f"SELECT substr(?1, (key / {f}) * {key_width} + 1, {key_width}), "
           f"CASE key % {f} {names_case} END, "
           f"CASE WHEN value IS NULL THEN x'' ELSE substr(?2, key * {width} + 1, {width}) END, "
           f"value, CAST(substr(?3, (key / {f}) * {_EPOCH_DIGITS} + 1, {_EPOCH_DIGITS}) AS INTEGER), "
           f"{created_sql} FROM json_each(?5) WHERE true {_UPSERT}")
    created = epochs(created_ts) if created_ts is not None else b""
    return sql, (keys, cells.tobytes(), epochs(event_ts), created, texts)


def _json_texts(columns: list[pa.ChunkedArray], take: np.ndarray, float32: bool) -> str:
    """Feast's value_text (str() of the proto's value as a Python float, None for null or NaN) of
    float `columns`, rows `take`, entity-major, as a JSON array of strings and nulls."""
    kind = np.float32 if float32 else np.float64  # a float_val proto holds the float32
    matrix = np.stack([c.to_numpy(zero_copy_only=False).astype(kind).astype(np.float64)[take]
                       for c in columns], axis=1)
    for j, column in enumerate(columns):
        if column.null_count:
            matrix[column.is_null().to_numpy(zero_copy_only=False)[take], j] = np.nan
    if not matrix.size:
        return "[]"
    bits, inverse = np.unique(matrix.ravel().view(np.int64), return_inverse=True)  # values repeat
    distinct = bits.view(np.float64)  # (unique by bits: -0.0 is not 0.0)
    quoted = pc.take(pc.binary_join_element_wise('"', float_reprs(distinct), '"', ""), pa.array(inverse))
    listed = pa.ListArray.from_arrays(pa.array([0, len(quoted)], pa.int32()), quoted.fill_null("null"))
    return "[" + pc.binary_join(listed, ",")[0].as_py() + "]"


_REPR_SPAN = (1e-4, 1e16)  # Python's repr writes a float in plain decimals within this magnitude


def float_reprs(values: np.ndarray) -> pa.StringArray:
    """repr() of each float64 (null for NaN), vectorised: Arrow's float-to-string cast writes the
    same shortest round-trip digits as repr, but no ".0" on whole numbers and exponents of its own;
    so whole numbers get ".0", and values outside repr's plain span (or that Arrow wrote with an
    exponent) are formatted by repr itself. Equal to repr on 10M sampled floats (see the tests)."""
    texts = pc.cast(pa.array(values), pa.string())
    magnitude = np.abs(values)
    in_span = (magnitude >= _REPR_SPAN[0]) & (magnitude < _REPR_SPAN[1])
    plain = np.isfinite(values) & (in_span | (magnitude == 0))
    plain &= ~pc.match_substring(texts, "e").to_numpy(zero_copy_only=False)
    whole = plain & ~pc.match_substring(texts, ".").to_numpy(zero_copy_only=False)
    texts = pc.if_else(pa.array(whole), pc.binary_join_element_wise(texts, ".0", ""), texts)
    nan = np.isnan(values)
    other = ~plain & ~nan
    if other.any():
        reprs = pa.array(list(map(repr, values[other].tolist())))
        texts = pc.replace_with_mask(texts, pa.array(other), reprs)
    if nan.any():
        texts = pc.if_else(pa.array(nan), pa.scalar(None, pa.string()), texts)
    return texts


def _sqlite_epochs(micros: np.ndarray) -> list[int]:
    """What Feast's SQLite adapter stores for a timestamp: int(naive_utc_datetime.timestamp()), which
    Python reads as local time; computed once per distinct timestamp."""
    distinct, inverse = np.unique(np.asarray(micros, dtype=np.int64), return_inverse=True)
    epochs = np.array([int((datetime(1970, 1, 1) + timedelta(microseconds=value)).timestamp())
                       for value in distinct.tolist()], dtype=np.int64)
    return epochs[inverse.reshape(-1)].tolist()


def _value_texts(column: pa.ChunkedArray, dtype) -> list[str | None]:
    """Feast's value_text column (extract_text_and_num): str() of the Python value, None for nulls."""
    from feast.types import Bool, Float32, Float64, Int32, Int64, String

    if dtype not in (Float64, Float32, Int64, Int32, Bool, String):
        return [None] * len(column)
    values = column.to_pylist()
    if dtype in (Float64, Float32):
        if dtype == Float32:  # the proto holds a float32; Feast's str() sees it widened to double
            values = [None if v is None else float(np.float32(v)) for v in values]
        return [None if v is None or v != v else str(v) for v in values]
    return [None if v is None else str(v) for v in values]


@dataclass
class _RedisChunk:
    """One view's share of a chunk, ready for Redis: the keys, and the view's HashPart whose values
    are _Packed (Float64/Float32) or, for any other feature type, lists of serialised values;
    nanos[j] is the time of part.stamps[j]."""

    keys: list[bytes]
    part: redis_payloads.HashPart
    nanos: np.ndarray

    @property
    def packed(self) -> bool:
        return all(isinstance(values, _Packed) for values in self.part.values)

    def rows(self, rows: np.ndarray) -> redis_payloads.HashPart:
        """The packed part of `rows` only."""
        part = self.part
        return redis_payloads.HashPart(part.ts_field, part.stamps, part.stamp_at[rows], part.fields,
                                       [_packed_rows(values, rows) for values in part.values])


class _RedisWriter(_BackgroundWriter):
    """What Feast's RedisOnlineStore.online_write_batch does: per entity, HSET of its `_ts:<view>`
    Timestamp and the view's feature hashes (then EXPIRE where `key_ttl_seconds` is set), skipping
    an entity whose stored timestamp is as new (unless `skip_dedup`). Per chunk and view:

    - the stored timestamps come back from one EVAL (a loop of HGET in the server), not one command
      per entity, and are not read at all by a job that starts on a database with no keys (`begin`);
    - the HSET commands are laid out in the Redis protocol (RESP) with numpy, from the packed
      values, and sent at once on one connection by a writer thread while the caller reads the
      next chunk's timestamps and lays out its commands (each pending write is for other entities
      or another view, so no stored timestamp it changes is read before it is done); every reply
      is read and checked.

    A job that starts on a database with no keys, on Redis 7 or later where this client may run
    RESTORE, writes each entity's whole hash (every view of the job) with one RESTORE per chunk
    instead: the hash those HSETs would build (see custintel.redis_payloads). A key that appeared
    in the meantime is not overwritten: its RESTORE is refused and the load fails.

    A view whose features are not all Float64/Float32 goes through redis-py's pipeline instead."""

    _STORED_STAMPS = ("local out = {} for i, key in ipairs(KEYS) do "
                      "out[i] = redis.call('HGET', key, ARGV[1]) "
                      "end return out")

    def __init__(self, store):
        super().__init__()
        self.store = store
        self.online_store = store._get_provider().online_store
        self.stamp_nanos: dict[bytes, int] = {}
        self.empty_at_start = False
        self.whole_hashes = False
        self._restore_allowed: bool | None = None

    def _client(self):
        return self.online_store._get_client(self.store.config.online_store)

    def begin(self, views: list) -> None:
        """A job into a database with no keys at all reads no stored timestamps: there are none
        before it, and it writes each (entity, view) once. (A writer beside it could slip a newer
        value in, as between Feast's own read and write, which are not atomic either.)"""
        client = self._client()
        self.empty_at_start = client.dbsize() == 0
        if self.empty_at_start and self._restore_allowed is None:
            self._restore_allowed = redis_payloads.restore_allowed(client)
        self.whole_hashes = self.empty_at_start and bool(self._restore_allowed)

    def write_views(self, views, join_keys, ts, created, chunk) -> None:
        prepared = [self._prepare(view, join_keys, ts, created, chunk) for view in views]
        if self.whole_hashes:
            keys = prepared[0].keys
            if (all(one.packed and one.keys == keys for one in prepared)
                    and len({len(key) for key in keys}) == 1
                    and redis_payloads.fits_listpack([one.part for one in prepared])):
                ttl = self.store.config.online_store.key_ttl_seconds
                for start in range(0, len(keys), _RESTORE_ROWS):  # smaller matrices, an earlier first send
                    rows = np.arange(start, min(start + _RESTORE_ROWS, len(keys)))
                    commands = redis_payloads.restore_commands(keys[start:start + _RESTORE_ROWS],
                                                               [one.rows(rows) for one in prepared], ttl)
                    self._submit("redis", _send_and_check, self._client(), commands, len(rows), b"+OK")
                return
        for one in prepared:
            self._write(one)

    def _prepare(self, view, join_keys, ts, created, chunk) -> _RedisChunk:
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name
        from google.protobuf.timestamp_pb2 import Timestamp

        config = self.store.config
        data = _serialise(view, join_keys, ts, created, chunk, config.entity_key_serialization_version)
        name = _versioned_fv_name(view, config)
        project = config.project.encode("utf-8")
        distinct, which = np.unique(data.micros, return_inverse=True)
        stamps, nanos = [], []
        for value in distinct.tolist():
            stamp = Timestamp()
            stamp.FromDatetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value))
            stamps.append(stamp.SerializeToString())
            nanos.append(stamp.seconds * 1_000_000_000 + stamp.nanos)
        part = redis_payloads.HashPart(
            ts_field=f"_ts:{name}".encode(), stamps=stamps, stamp_at=which.reshape(-1),
            fields=[_mmh3(f"{name}:{feature.name}") for feature in view.features],  # in Feast's HSET order
            values=[data.blobs[feature.name] for feature in view.features])
        return _RedisChunk([key + project for key in data.keys], part, np.asarray(nanos, dtype=np.int64))

    def _write(self, prepared: _RedisChunk) -> None:
        """HSETs of one view's share of a chunk (the entities whose stored timestamp is older)."""
        online_config = self.store.config.online_store
        redis_keys = prepared.keys
        client = self._client()
        write = np.ones(len(redis_keys), dtype=bool)
        if not online_config.skip_dedup and redis_keys and not self.empty_at_start:
            stored = client.eval(self._STORED_STAMPS, len(redis_keys), *redis_keys, prepared.part.ts_field)
            previous = np.array([self._nanos(raw) for raw in stored], dtype=np.int64)
            # Feast skips an entity when a stored timestamp exists and is as new
            write = (previous == 0) | (prepared.nanos[prepared.part.stamp_at] > previous)
        rows = np.flatnonzero(write)
        if not len(rows):
            return
        if not prepared.packed or len({len(k) for k in redis_keys}) != 1:
            self._finish_writes()
            self._pipeline(client, online_config, redis_keys, rows, prepared.part)
            return
        commands = redis_payloads.hset_commands([redis_keys[i] for i in rows.tolist()], prepared.rows(rows),
                                                online_config.key_ttl_seconds)
        replies_per_entity = 2 if online_config.key_ttl_seconds else 1
        self._submit("redis", _send_and_check, client, commands, len(rows) * replies_per_entity)

    def _nanos(self, raw: bytes | None) -> int:
        if not raw:
            return 0
        nanos = self.stamp_nanos.get(raw)
        if nanos is None:
            nanos = self.stamp_nanos[raw] = _stamp_nanos(raw)
        return nanos

    @staticmethod
    def _pipeline(client, online_config, redis_keys, rows, part: redis_payloads.HashPart) -> None:
        columns = [(field, values.blobs() if isinstance(values, _Packed) else values)
                   for field, values in zip(part.fields, part.values, strict=True)]
        with client.pipeline(transaction=False) as pipe:
            for i in rows.tolist():
                mapping = {part.ts_field: part.stamps[part.stamp_at[i]]}
                for hashed, column in columns:
                    mapping[hashed] = column[i]
                pipe.hset(redis_keys[i], mapping=mapping)
                if online_config.key_ttl_seconds:
                    pipe.expire(name=redis_keys[i], time=online_config.key_ttl_seconds)
            pipe.execute()


def _packed_rows(packed: _Packed, rows: np.ndarray) -> _Packed:
    raw = np.frombuffer(packed.raw, dtype=f"S{packed.width}")[rows].tobytes()
    return _Packed(raw, packed.width, packed.nulls[rows])


def _send_and_check(client, commands, replies: int, ok: bytes = b":") -> None:
    """Send pre-packed commands whose replies are single lines (HSET, EXPIRE: integers; RESTORE: +OK;
    or errors) on one pooled connection and read all `replies` lines at once; raise the first reply
    that does not start with `ok`."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([commands])
        received, lines = [], 0
        while lines < replies:
            data = conn._sock.recv(1 << 20)
            if not data:
                raise RedisConnectionError("Redis closed the connection while materializing")
            received.append(data)
            lines += data.count(b"\n")
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    answers = b"".join(received).split(b"\r\n")[:-1]
    if len(answers) != replies or any(not answer.startswith(ok) for answer in answers):
        errors = [answer for answer in answers if not answer.startswith(ok)]
        raise ResponseError(f"Redis refused a write while materializing: {errors[:1] or answers[-1:]}")


def _stamp_nanos(raw: bytes) -> int:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return stamp.seconds * 1_000_000_000 + stamp.nanos
