"""Fast, idempotent Feast materialization: offline parquet -> online store, chunk by chunk.

Stock `FeatureStore.materialize` reads the whole window through Dask, builds one protobuf per
value and upserts one SQLite row per statement (about 2,000 rows/s here, GBs of memory for 200k
rows). This module does the same job with the same result:

1. per offline source, read only the needed columns with pyarrow, `chunk_rows` rows at a time,
   keep the rows with start <= event_timestamp <= end (Feast's window, both ends included) and
   fold them into the newest row per entity (ties broken by the created timestamp, if any);
2. write those rows `chunk_rows` entities at a time: entity keys and values are serialised the
   way Feast does (checked against Feast's own conversion on every chunk), then written with one
   `executemany` (SQLite), one pipeline (Redis) or the store's `online_write_batch` (any other
   store), in the layout Feast's `get_online_features` reads;
3. only when every chunk of a view is written, record the interval in the registry
   (`registry.apply_materialization`, as Feast does), which is the watermark that
   `materialize_incremental` starts from.

Rewriting a window writes the same values again, so a run that died half-way is repaired by
running it again: its interval was never recorded, so the incremental rerun covers it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custintel.errors import UserError

log = logging.getLogger(__name__)
_CHECK_ROWS = 32  # rows per chunk whose fast serialisation is compared with Feast's own
_ROWS_PER_STATEMENT = 50


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
                chunk_rows: int = 50_000) -> dict:
    """Like `store.materialize(start_date, end_date)`, fast. Returns the window per view."""
    start, end = _utc(start_date), check_end_date(end_date)
    if start > end:
        raise UserError(f"start_date {start.isoformat()} is after end_date {end.isoformat()}")
    return _run(store, [(view, start) for view in online_views(store, views)], end, chunk_rows)


def materialize_incremental(store, end_date: datetime, views: Sequence[str] | None = None,
                            chunk_rows: int = 50_000) -> dict:
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
    return _run(store, plan, end, chunk_rows)


def _run(store, plan: list[tuple], end: datetime, chunk_rows: int) -> dict:
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
    writer = _writer_for(store)
    summary = {}
    for job in jobs.values():
        rows = newest_rows(job, chunk_rows)
        for offset in range(0, max(rows.num_rows, 1), chunk_rows):
            chunk = rows.slice(offset, chunk_rows)
            if chunk.num_rows:
                _write_chunk(writer, job, chunk)
        for view in job.views:
            store.registry.apply_materialization(view, store.project, job.start, job.end, commit=True)
            summary[view.name] = {"start": job.start.isoformat(), "end": job.end.isoformat(),
                                  "rows": rows.num_rows}
        log.info("materialized %d entities into %s for %s", rows.num_rows,
                 [view.name for view in job.views], (job.start.isoformat(), job.end.isoformat()))
    return summary


def _source_path(store, source) -> str:
    path = Path(source.path)
    if not path.is_absolute() and store.repo_path is not None:
        path = Path(store.repo_path) / path
    return str(path)


def _write_chunk(writer, job: _SourceJob, chunk: pa.Table) -> None:
    """Write one chunk of newest rows into every view of `job` (a seam for crash tests)."""
    for view in job.views:
        writer(view, job.join_keys, job.timestamp_field, job.created_field, chunk)


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
    """Newest row per entity with start <= timestamp <= end, read `chunk_rows` at a time.

    Memory stays at one chunk plus one row per entity."""
    inverse = {feature: column for column, feature in job.field_mapping.items()}
    features = list(dict.fromkeys(f.name for view in job.views for f in view.features))
    wanted = [*job.join_keys, job.timestamp_field, *([job.created_field] if job.created_field else []),
              *features]
    source_columns = [inverse.get(name, name) for name in wanted]
    parquet = pq.ParquetFile(job.path)
    missing = [name for name in source_columns if name not in parquet.schema_arrow.names]
    if missing:
        raise UserError(f"offline source {job.path} lacks the columns {missing} that the feature views "
                        f"{[view.name for view in job.views]} need: rebuild the features, then feast-apply")
    start_us = int(job.start.timestamp() * 1_000_000)
    end_us = int(job.end.timestamp() * 1_000_000)
    best: pa.Table | None = None
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=source_columns):
        table = pa.Table.from_batches([batch]).rename_columns(wanted)
        stamps = _micros(table[job.timestamp_field])
        table = table.filter(pa.array((stamps >= start_us) & (stamps <= end_us)))
        if table.num_rows == 0:
            continue
        if best is not None:
            table = pa.concat_tables([best, table.cast(best.schema)])
        best = _newest_per_key(table, job.join_keys, job.timestamp_field, job.created_field)
    if best is None:
        best = parquet.schema_arrow.empty_table().select(source_columns).rename_columns(wanted)
    return best.combine_chunks()


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


def _value_blobs(view, chunk: pa.Table) -> dict[str, list[bytes]]:
    """Serialised ValueProto per feature: Float64/Float32 by template (null -> empty Value),
    any other type by Feast's own conversion."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float32, Float64

    blobs: dict[str, list[bytes]] = {}
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
            raw, step = packed.tobytes(), packed.dtype.itemsize
            blobs[feature.name] = [b"" if null else raw[i * step:(i + 1) * step]
                                   for i, null in enumerate(nulls.tolist())]
        else:
            slow.append(feature.name)
    if slow:
        rows = _feast_rows(view, [c.name for c in view.entity_columns], chunk)
        for name in slow:
            blobs[name] = [values[name].SerializeToString() for _, values, _, _ in rows]
    return blobs


def _check_against_feast(view, join_keys: list[str], chunk: pa.Table, keys: list[bytes],
                         blobs: dict[str, list[bytes]], version: int) -> None:
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
    blobs: dict[str, list[bytes]]
    micros: np.ndarray
    created_micros: np.ndarray | None


def _serialise(view, join_keys, ts, created, chunk, version) -> _Serialised:
    keys = _entity_keys(view, join_keys, chunk, version)
    blobs = _value_blobs(view, chunk)
    _check_against_feast(view, join_keys, chunk, keys, blobs, version)
    return _Serialised(keys, blobs, _micros(chunk[ts]), _micros(chunk[created]) if created else None)


# ---------------------------------------------------------------- writers


def _writer_for(store) -> Callable:
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    config = store.config
    online = config.online_store
    plain_sqlite = (isinstance(online, SqliteOnlineStoreConfig) and not online.vector_enabled
                    and not getattr(online, "enable_openai_compatible_store", False))
    if plain_sqlite:
        return _SqliteWriter(store)
    if isinstance(online, RedisOnlineStoreConfig) and online.redis_type == RedisType.redis:
        return _RedisWriter(store)
    return _BatchApiWriter(store)


class _BatchApiWriter:
    """Any online store: Feast's conversion and the store's `online_write_batch`."""

    def __init__(self, store):
        self.store = store
        self.provider = store._get_provider()

    def __call__(self, view, join_keys, ts, created, chunk) -> None:
        self.provider.online_write_batch(self.store.config, view, _feast_rows(view, join_keys, chunk), None)


class _SqliteWriter:
    """The upsert Feast's SqliteOnlineStore.online_write_batch runs, as one executemany per view."""

    def __init__(self, store):
        self.store = store
        self.online_store = store._get_provider().online_store

    def __call__(self, view, join_keys, ts, created, chunk) -> None:
        from feast.infra.online_stores.sqlite import _quote_id, _table_id

        config = self.store.config
        data = _serialise(view, join_keys, ts, created, chunk, config.entity_key_serialization_version)
        table = _table_id(config.project, view, config.registry.enable_online_feature_view_versioning)
        columns = "(entity_key, feature_name, value, value_text, event_ts, created_ts)"
        upsert = ("ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
                  "value_text = excluded.value_text, event_ts = excluded.event_ts, "
                  "created_ts = excluded.created_ts;")
        event_ts = _sqlite_epochs(data.micros)
        created_ts = _sqlite_epochs(data.created_micros) if data.created_micros is not None else None
        names = sorted(feature.name for feature in view.features)  # rows in primary-key order
        texts = {feature.name: _value_texts(chunk[feature.name], feature.dtype) for feature in view.features}
        created_ts = created_ts or [None] * len(data.keys)
        rows = [(data.keys[i], name, data.blobs[name][i], texts[name][i], event_ts[i], created_ts[i])
                for i in sorted(range(len(data.keys)), key=data.keys.__getitem__) for name in names]
        # many rows per statement: SQLite's per-statement cost dominates a one-row upsert
        full = len(rows) - len(rows) % _ROWS_PER_STATEMENT
        many = (f"INSERT INTO {_quote_id(table)} {columns} VALUES "
                f"{', '.join(['(?, ?, ?, ?, ?, ?)'] * _ROWS_PER_STATEMENT)} {upsert}")
        one = f"INSERT INTO {_quote_id(table)} {columns} VALUES (?, ?, ?, ?, ?, ?) {upsert}"
        conn = self.online_store._get_conn(config)
        with conn:
            conn.executemany(many, (tuple(chain.from_iterable(rows[i:i + _ROWS_PER_STATEMENT]))
                                    for i in range(0, full, _ROWS_PER_STATEMENT)))
            conn.executemany(one, rows[full:])


def _sqlite_epochs(micros: np.ndarray) -> list[int]:
    """What Feast's SQLite adapter stores for a timestamp: int(naive_utc_datetime.timestamp()), which
    Python reads as local time; computed once per distinct timestamp."""
    cache: dict[int, int] = {}
    out = []
    for value in micros.tolist():
        epoch = cache.get(value)
        if epoch is None:
            naive = (datetime(1970, 1, 1) + timedelta(microseconds=value))
            epoch = cache[value] = int(naive.timestamp())
        out.append(epoch)
    return out


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


class _RedisWriter:
    """What Feast's RedisOnlineStore.online_write_batch does (HSET of the view's feature hashes and its
    `_ts:<view>` key per entity, skipping entities whose stored timestamp is as new), with the
    feature hashes computed once per view and one pipeline per chunk."""

    def __init__(self, store):
        self.store = store
        self.online_store = store._get_provider().online_store

    def __call__(self, view, join_keys, ts, created, chunk) -> None:
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name
        from google.protobuf.timestamp_pb2 import Timestamp

        config = self.store.config
        online_config = config.online_store
        data = _serialise(view, join_keys, ts, created, chunk, config.entity_key_serialization_version)
        name = _versioned_fv_name(view, config)
        ts_key = f"_ts:{name}"
        hashes = {feature.name: _mmh3(f"{name}:{feature.name}") for feature in view.features}
        project = config.project.encode("utf-8")
        redis_keys = [key + project for key in data.keys]
        stamps: dict[int, bytes] = {}
        for value in set(data.micros.tolist()):
            stamp = Timestamp()
            stamp.FromDatetime(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value))
            stamps[value] = stamp.SerializeToString()
        client = self.online_store._get_client(online_config)
        with client.pipeline(transaction=False) as pipe:
            if not online_config.skip_dedup:
                for key in redis_keys:
                    pipe.hget(key, ts_key)
                previous = pipe.execute()
            else:
                previous = [None] * len(redis_keys)
            columns = [(hashes[f], data.blobs[f]) for f in hashes]
            for i, (key, old) in enumerate(zip(redis_keys, previous, strict=True)):
                micros = int(data.micros[i])
                if old is not None and _stamp_nanos(old) >= micros * 1000:
                    continue  # Feast keeps the stored row when it is as new or newer
                mapping = {ts_key: stamps[micros]}
                for hashed, blobs in columns:
                    mapping[hashed] = blobs[i]
                pipe.hset(key, mapping=mapping)
                if online_config.key_ttl_seconds:
                    pipe.expire(name=key, time=online_config.key_ttl_seconds)
            pipe.execute()


def _stamp_nanos(raw: bytes) -> int:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return stamp.seconds * 1_000_000_000 + stamp.nanos
