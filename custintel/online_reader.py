"""Fast online read of the feature service: the values `store.get_online_features` returns, with the
TTL rule of `feature_store.online_features`, read straight from the online store.

Stock `get_online_features` resolves the service from the registry, builds entity-key protos, reads
view by view, builds one ValueProto per value and a response proto, then converts it back to Python:
about 0.7 ms for one customer and 20-40 ms for 100 here. `OnlineReader` resolves the service's views,
feature names, TTLs, table names / Redis hash fields and the entity-key prefix once, then per request:

- SQLite: one statement for all views (a VALUES list of the requested keys joined on each view's
  table; `UNION ALL` over views) on a persistent read-only connection per thread;
- Redis: one HMGET per customer with the fields of every view, all sent at once on one connection
  (the commands encoded once but for the key);
- 32 customers or more: two halves, the second read on a helper thread (`_SplitReads`);
- one customer (the common serving call): the key's rows as tuples from one `UNION ALL` statement
  (SQLite) or one HMGET without a pipeline (Redis), doubles unpacked with `struct`, and the
  DataFrame built from cached axes and block placements (`_Frames`);

and decodes the ValueProto blobs of Float64/Float32 features in bulk with numpy (a blob of any
other shape is parsed with Feast's ValueProto and converted as Feast does). Timestamps are turned
into what the stock response carries (whole seconds, via the same conversions), once per distinct
stored value. Only the plain SQLite store and a plain Redis (redis-py client) on views of float
features are supported; `OnlineReader.for_store` returns None for anything else (the caller then
uses the stock path).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain

import numpy as np
import pandas as pd

from custintel.features.schema import ENTITY_KEY

_DOUBLE_TAG, _FLOAT_TAG = 0x29, 0x35  # ValueProto double_val (field 5, fixed64), float_val (6, fixed32)
_MAX_KEYS_PER_STATEMENT = 5_000  # two bound parameters per key; SQLite allows 32,766
_PARALLEL_MIN_KEYS = 32  # a read of this many keys or more is split over two threads (_SplitReads)
_SQLITE_MMAP_BYTES = 1 << 30
_SQLITE_CACHE_KIB = 256 * 1024
_unpack_double = struct.Struct("<d").unpack_from


class Unsupported(Exception):
    """The store or feature service is not one the fast reader handles (use the stock path)."""


def _python_float(blob: bytes | None) -> float:
    """Feast's conversion of one serialised ValueProto to a float (NaN for an empty value)."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    if not blob:
        return np.nan
    value = Value()
    value.ParseFromString(blob)
    python = feast_value_type_to_python_type(value)
    return np.nan if python is None else float(python)


def decode_floats(blobs: Sequence[bytes | None]) -> np.ndarray:
    """Serialised ValueProtos (double_val / float_val; empty or None for missing) -> float64, NaN for missing.

    The common case (every blob empty or one tag byte + 8 bytes of double) is one numpy parse."""
    blobs = [blob or b"" for blob in blobs]
    out = np.full(len(blobs), np.nan)
    if not blobs:
        return out
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    doubles = lengths == 9
    if np.all(doubles | (lengths == 0)):
        parsed = np.frombuffer(b"".join(blobs), dtype=[("tag", "u1"), ("value", "<f8")])
        if np.all(parsed["tag"] == _DOUBLE_TAG):
            out[doubles] = parsed["value"]
            return out
    for i in np.flatnonzero(lengths).tolist():
        blob = blobs[i]
        if len(blob) == 9 and blob[0] == _DOUBLE_TAG:
            out[i] = np.frombuffer(blob, dtype="<f8", offset=1)[0]
        elif len(blob) == 5 and blob[0] == _FLOAT_TAG:
            out[i] = np.frombuffer(blob, dtype="<f4", offset=1)[0]
        else:
            out[i] = _python_float(blob)
    return out


class OnlineReader:
    """Reads the feature service `service_name` of `store` for customer ids (see the module docstring)."""

    def __init__(self, store, service_name: str | None = None):
        from feast.types import Float32, Float64

        from feature_repo.definitions import FEATURE_SERVICE

        self.store = store
        service = store.get_feature_service(service_name or FEATURE_SERVICE)
        self.views, self.view_features, ttls = [], [], []
        names: list[str] = []
        for projection in service.feature_view_projections:
            view = store.get_feature_view(projection.name)
            if [c.name for c in view.entity_columns] != [ENTITY_KEY]:
                raise Unsupported(f"feature view {view.name} is not keyed by {ENTITY_KEY} alone")
            if any(field.dtype not in (Float64, Float32) for field in projection.features):
                raise Unsupported(f"feature view {view.name} has features that are not Float64/Float32")
            self.views.append(view)
            self.view_features.append([field.name for field in projection.features])
            names.extend(field.name for field in projection.features)
            ttls.append(view.ttl.total_seconds() if view.ttl else None)
        # stock online_features looks the TTL up by feature name (the last view serving a name wins)
        self.feature_names = names
        self.columns = {name: i for i, name in enumerate(names)}
        self.view_of_column = np.array([v for v, features in enumerate(self.view_features) for _ in features])
        ttl_by_name = {name: ttls[v] for v, features in enumerate(self.view_features) for name in features}
        self.column_ttl = np.array([np.nan if ttl_by_name[n] is None else ttl_by_name[n] for n in names])
        self.has_ttl = bool(np.isfinite(self.column_ttl).any())
        # one row's TTL check view by view: (view, first column, end column, TTL) of each view with a
        # TTL, when no name is served by two views (else the by-name rule above needs the matrix)
        spans, start = [], 0
        for v, features in enumerate(self.view_features):
            if ttls[v] is not None:
                spans.append((v, start, start + len(features), ttls[v]))
            start += len(features)
        self.view_spans = spans if len(set(names)) == len(names) else None
        self.key_prefix = _entity_key_prefix(store.config.entity_key_serialization_version)
        self.backend = _backend_for(self)
        self._frames = _Frames()

    @classmethod
    def for_store(cls, store) -> OnlineReader | None:
        """A reader for `store`, or None when its online store or feature service is not supported."""
        try:
            return cls(store)
        except Unsupported:
            return None

    def entity_keys(self, unique_ids: np.ndarray) -> list[bytes]:
        raw = unique_ids.astype("<i8").tobytes()
        prefix = self.key_prefix
        return [prefix + raw[i:i + 8] for i in range(0, len(raw), 8)]

    def read_matrix(self, customer_ids: Sequence[int], as_of: datetime | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids as int64, float64 matrix rows x self.feature_names) with the TTL applied."""
        ids = np.asarray([int(i) for i in customer_ids], dtype=np.int64)
        if len(ids) == 0:
            return ids, np.empty((0, len(self.feature_names)))
        if len(ids) == 1:  # one customer (the common serving call): no dedup, one key's rows
            unique, inverse = ids, None
            values, stamps = self.backend.read_one(self.key_prefix + ids.astype("<i8").tobytes())
        else:
            unique, inverse = np.unique(ids, return_inverse=True)
            values, stamps = self.backend.read(self.entity_keys(unique))
        if self.has_ttl:
            now = (as_of or datetime.now(UTC)).timestamp()
            # stock: a value whose event time (whole seconds) is before now - TTL is stale
            if inverse is None and self.view_spans is not None:
                row, stored = values[0], stamps[0].tolist()
                for view, start, end, ttl in self.view_spans:
                    if stored[view] < now - ttl:
                        row[start:end] = np.nan
            else:
                stale = stamps[:, self.view_of_column] < (now - self.column_ttl)  # NaN TTL compares False
                values[stale] = np.nan
        return ids, values if inverse is None else values[inverse.reshape(-1)]

    def read(self, customer_ids: Sequence[int], feature_names: Sequence[str],
             as_of: datetime | None = None) -> pd.DataFrame:
        """Rows for `customer_ids` in order (duplicates kept): customer_id and `feature_names` (float64,
        NaN where missing, stale or unknown), as feature_store.online_features returns them."""
        columns = [self.columns[name] for name in feature_names]  # KeyError for a name not served
        ids, values = self.read_matrix(customer_ids, as_of)
        if columns != list(range(len(self.feature_names))):
            values = values[:, columns]
        return self._frames.frame(ids, values, feature_names)


class _Frames:
    """Builds the response DataFrame from its two blocks (customer_id int64, the features float64)
    with the column Index and block placements made once per list of names (a pandas Index of 46
    names alone takes ~50 us to build): ~10 us for one row against ~110 us for `_frame`, which it
    falls back to where pandas' internal block API is not there."""

    def __init__(self):
        self.axes: dict[tuple[str, ...], tuple] = {}
        self.index_1 = pd.RangeIndex(1)
        try:
            from pandas._libs.internals import BlockPlacement
            from pandas.core.internals.blocks import new_block
            from pandas.core.internals.managers import BlockManager

            self.api = (BlockPlacement, new_block, BlockManager)
        except ImportError:
            self.api = None

    def frame(self, ids: np.ndarray, values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
        if self.api is not None:
            key = tuple(names)
            axes = self.axes.get(key)
            if axes is None:
                placement, _, _ = self.api
                axes = (pd.Index([ENTITY_KEY, *key]), placement(slice(0, 1)),
                        placement(slice(1, 1 + len(key))))
                if len(self.axes) < 64:
                    self.axes[key] = axes
            columns, ids_at, values_at = axes
            _, new_block, manager_of = self.api
            try:
                index = self.index_1 if len(ids) == 1 else pd.RangeIndex(len(ids))
                blocks = (new_block(ids.reshape(1, -1), placement=ids_at, ndim=2),
                          new_block(values.T, placement=values_at, ndim=2))
                manager = manager_of(blocks, [columns, index], verify_integrity=False)
                return pd.DataFrame._from_mgr(manager, axes=manager.axes)
            except (AttributeError, TypeError):
                self.api = None
        return _frame(ids, values, list(names))


def _frame(ids: np.ndarray, values: np.ndarray, names: list[str]) -> pd.DataFrame:
    """DataFrame of customer_id (int64) and `names` (float64), built from its two blocks (pandas'
    block API for libraries: about a quarter of the time of the array constructor for one row, which
    splits the matrix into a column each and consolidates them again); the array constructor where
    that API is not available."""
    columns = pd.Index([ENTITY_KEY, *names])
    index = pd.RangeIndex(len(ids))
    try:
        from pandas.core.internals.api import make_block
        from pandas.core.internals.managers import BlockManager

        blocks = [make_block(ids.reshape(1, -1), placement=slice(0, 1)),
                  make_block(values.T, placement=slice(1, 1 + len(names)))]
        manager = BlockManager(blocks, [columns, index], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)
    except (ImportError, AttributeError, TypeError):
        pass
    try:
        return pd.DataFrame._from_arrays([ids, *values.T], columns=columns, index=index,
                                         verify_integrity=False)
    except (AttributeError, TypeError):
        frame = pd.DataFrame(values, columns=names, copy=False)
        frame.insert(0, ENTITY_KEY, ids)
        return frame


def _entity_key_prefix(version: int) -> bytes:
    """Feast's serialised INT64 entity key of `customer_id` is this prefix + the id's 8 bytes (LE)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    def serialized(value: int) -> bytes:
        return serialize_entity_key(EntityKey(join_keys=[ENTITY_KEY], entity_values=[Value(int64_val=value)]),
                                    entity_key_serialization_version=version)

    probe = 0x0102030405060708
    template, suffix = serialized(probe), probe.to_bytes(8, "little")
    if not template.endswith(suffix):
        raise Unsupported(f"entity key serialization version {version} is not prefix + int64")
    prefix = template[:-8]
    for value in (0, -1, 2**40 + 7):
        if serialized(value) != prefix + value.to_bytes(8, "little", signed=True):
            raise Unsupported(f"entity key serialization version {version} is not prefix + int64")
    return prefix


def _backend_for(reader: OnlineReader):
    from feast.infra.online_stores.redis import RedisClient, RedisOnlineStoreConfig, RedisType
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    online = reader.store.config.online_store
    if (isinstance(online, SqliteOnlineStoreConfig) and not online.vector_enabled
            and not getattr(online, "enable_openai_compatible_store", False)):
        return _SqliteBackend(reader)
    if (isinstance(online, RedisOnlineStoreConfig) and online.redis_type == RedisType.redis
            and getattr(online, "client", RedisClient.redis) != RedisClient.glide):
        return _RedisBackend(reader)
    raise Unsupported(f"online store {type(online).__name__} is not supported by the fast reader")


class _SplitReads:
    """`read` of many keys in two halves, the second on a helper thread (subclasses implement
    `_read_into` and set n_columns / n_views): the store's own work (SQLite runs a statement without
    holding the GIL; Redis answers one pipeline while the client sends or parses the other) overlaps
    on two cores. From _PARALLEL_MIN_KEYS keys on and with more than one core; fewer keys are read in
    the calling thread alone."""

    n_columns: int
    n_views: int

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool = None  # the helper thread, started by the first large read

    def read(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(float64 values: keys x served features, NaN where none; int64 stamps: keys x views)."""
        values = np.full((len(keys), self.n_columns), np.nan)
        stamps = np.zeros((len(keys), self.n_views), dtype=np.int64)
        half = len(keys) // 2
        if len(keys) >= _PARALLEL_MIN_KEYS and (os.cpu_count() or 1) > 1:
            other = self._helper().submit(self._read_into, keys[half:], half, values, stamps)
            try:
                self._read_into(keys[:half], 0, values, stamps)
            finally:
                other.result()  # re-raises the helper's error (e.g. the store went away)
        else:
            self._read_into(keys, 0, values, stamps)
        return values, stamps

    def _helper(self):
        with self.lock:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custintel-online-read")
            return self.pool

    def _read_into(self, keys: list[bytes], offset: int, values: np.ndarray, stamps: np.ndarray) -> None:
        raise NotImplementedError


class _SqliteBackend(_SplitReads):
    """Feast's SQLite layout: one table per view, one row per (entity_key, feature_name) with the
    ValueProto blob and event_ts as the integer Feast's adapter wrote."""

    def __init__(self, reader: OnlineReader):
        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id

        super().__init__()
        config = reader.store.config
        self.path = SqliteOnlineStore._get_db_path(config)
        versioning = config.registry.enable_online_feature_view_versioning
        many, one, offset = [], [], 0
        for view, features in zip(reader.views, reader.view_features, strict=True):
            # a row of a feature the service does not serve gets column -1 and is dropped
            cases = " ".join(f"WHEN {_quote_literal(name)} THEN {offset + j}"
                             for j, name in enumerate(features))
            rows = (f"CASE t.feature_name {cases} ELSE -1 END AS c, t.value AS v, t.event_ts AS e FROM "
                    f"{_quote_id(_table_id(config.project, view, versioning))} AS t")
            many.append(f"SELECT req.i AS i, {rows} JOIN req ON t.entity_key = req.k")
            one.append(f"SELECT {rows} WHERE t.entity_key = ?1")
            offset += len(features)
        self.body = " UNION ALL ".join(many)
        # one key: its rows as tuples (45 rows: cheaper than parsing the aggregate's text)
        self.one = " UNION ALL ".join(one)
        # the whole answer as one row: Python builds no object per stored value
        self.aggregate = ("SELECT group_concat(i), group_concat(c), group_concat(coalesce(e, 0)), "
                          "group_concat(coalesce(length(v), 0)), CAST(group_concat(v, '') AS BLOB) "
                          f"FROM ({self.body})")
        self.n_columns, self.n_views = offset, len(reader.views)
        self.view_of_column = reader.view_of_column
        self.view_of_column_list = reader.view_of_column.tolist()
        self.local = threading.local()
        self.statements: dict[int, str] = {}
        self.seconds: dict[int, int] = {}

    def _conn(self):
        import sqlite3

        conn = getattr(self.local, "conn", None)
        if conn is None:
            from pathlib import Path

            conn = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, cached_statements=256)
            conn.execute(f"PRAGMA mmap_size = {_SQLITE_MMAP_BYTES}")  # no read() per page
            conn.execute(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
            self.local.conn = conn
        return conn

    def _statement(self, n: int, aggregate: bool = True) -> str:
        sql = self.statements.get((n, aggregate))
        if sql is None:
            sql = self.statements[n, aggregate] = (f"WITH req(i, k) AS (VALUES {', '.join(['(?, ?)'] * n)}) "
                                                   f"{self.aggregate if aggregate else self.body}")
        return sql

    def _stock_seconds(self, stored: int) -> int:
        """What the stock read reports for a stored event_ts: datetime.fromtimestamp(stored) (local,
        naive) taken as UTC, in whole seconds."""
        seconds = self.seconds.get(stored)
        if seconds is None:
            from google.protobuf.timestamp_pb2 import Timestamp

            stamp = Timestamp()
            stamp.FromDatetime(datetime.fromtimestamp(int(stored)).replace(tzinfo=UTC))
            seconds = self.seconds[stored] = stamp.seconds
        return seconds

    def _read_into(self, keys: list[bytes], offset: int, values: np.ndarray, stamps: np.ndarray) -> None:
        """Read `keys` into rows offset.. of `values` and `stamps` (this thread's connection)."""
        conn = self._conn()
        for start in range(offset, offset + len(keys), _MAX_KEYS_PER_STATEMENT):
            chunk = keys[start - offset:start - offset + _MAX_KEYS_PER_STATEMENT]
            params = list(chain.from_iterable(enumerate(chunk, start)))
            rows, columns, stored, lengths, joined = conn.execute(
                self._statement(len(chunk)), params).fetchall()[0]  # to the end: no lock is kept
            if rows is None:
                continue  # none of these keys is stored
            try:
                rows_at, columns_at, stored_at, lengths = (_integers(text)
                                                           for text in (rows, columns, stored, lengths))
                decoded = _decode_joined(joined or b"", lengths)
            except ValueError:  # not the layout expected (e.g. a timestamp stored as text): row by row
                rows_at, columns_at, stored_at, decoded = self._rows(conn, chunk, params)
            served = columns_at >= 0
            rows_at, columns_at, stored_at = rows_at[served], columns_at[served], stored_at[served]
            values[rows_at, columns_at] = decoded[served]
            distinct = np.unique(stored_at)
            lookup = np.array([self._stock_seconds(value) for value in distinct.tolist()], dtype=np.int64)
            # stock takes the timestamp of the entity's last row in a view; a view's rows share it
            stamps[rows_at, self.view_of_column[columns_at]] = lookup[np.searchsorted(distinct, stored_at)]

    def read_one(self, key: bytes) -> tuple[np.ndarray, np.ndarray]:
        """`read([key])` for one key, row by row in Python (no numpy per stored value)."""
        values = [np.nan] * self.n_columns
        stamps = [0] * self.n_views
        view_of_column, seconds = self.view_of_column_list, self.seconds
        for column, blob, stored in self._conn().execute(self.one, (key,)).fetchall():
            if column < 0:
                continue
            if blob:
                values[column] = _decode_one(blob)
            if not isinstance(stored, int):
                if stored is not None:  # not the layout expected (a timestamp stored as text)
                    return self.read([key])
                stored = 0
            stamp = seconds.get(stored)
            stamps[view_of_column[column]] = self._stock_seconds(stored) if stamp is None else stamp
        return np.array([values]), np.array([stamps], dtype=np.int64)

    def _rows(self, conn, chunk: list[bytes], params: list):
        rows = conn.execute(self._statement(len(chunk), aggregate=False), params).fetchall()
        row_index, column_index, blobs, stored = zip(*rows, strict=True)
        return (np.array(row_index, dtype=np.int64), np.array(column_index, dtype=np.int64),
                np.array([int(value) for value in stored], dtype=np.int64), decode_floats(blobs))


def _decode_one(blob: bytes | None) -> float:
    """decode_floats of one value without numpy's set-up (one customer's reads: ~8 us for 45 values,
    against ~45 us for decode_floats; a missing value costs no numpy either)."""
    if not blob:
        return np.nan
    if len(blob) == 9 and blob[0] == _DOUBLE_TAG:
        return _unpack_double(blob, 1)[0]
    return decode_floats([blob])[0]


def _integers(text: str) -> np.ndarray:
    """A group_concat of integers -> int64 array (ValueError for anything else)."""
    parsed = np.fromstring(text, dtype=np.int64, sep=",")
    if len(parsed) != text.count(",") + 1:
        raise ValueError("not a list of integers")
    return parsed


def _decode_joined(joined: bytes, lengths: np.ndarray) -> np.ndarray:
    """decode_floats of the blobs whose concatenation is `joined` and whose lengths are `lengths`."""
    doubles = lengths == 9
    if np.all(doubles | (lengths == 0)) and len(joined) == 9 * int(doubles.sum()):
        parsed = np.frombuffer(joined, dtype=[("tag", "u1"), ("value", "<f8")])
        if np.all(parsed["tag"] == _DOUBLE_TAG):
            out = np.full(len(lengths), np.nan)
            out[doubles] = parsed["value"]
            return out
    if int(lengths.sum()) != len(joined):
        raise ValueError("stored values are not the concatenated blobs")
    ends = np.cumsum(lengths).tolist()
    return decode_floats([joined[end - length:end]
                          for end, length in zip(ends, lengths.tolist(), strict=True)])


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _RedisBackend(_SplitReads):
    """Feast's Redis layout: one hash per entity (serialised key + project), one field per feature
    (mmh3 of "<view>:<feature>") holding the ValueProto and one `_ts:<view>` Timestamp per view."""

    def __init__(self, reader: OnlineReader):
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name

        super().__init__()
        store = reader.store
        self.config = store.config
        self.online_store = store._get_provider().online_store
        self.project = store.config.project.encode("utf-8")
        fields, ts_fields = [], []
        for view, features in zip(reader.views, reader.view_features, strict=True):
            name = _versioned_fv_name(view, store.config)
            fields.extend(_mmh3(f"{name}:{feature}") for feature in features)
            ts_fields.append(f"_ts:{name}")
        self.fields = [*fields, *ts_fields]
        self.n_columns, self.n_views = len(fields), len(ts_fields)
        self.seconds: dict[bytes, int] = {}
        # one entity's HMGET in the protocol's encoding, made once but for the key: packing the 49
        # field names per customer was ~1.6 ms of a 100-customer read
        encoded = [field if isinstance(field, bytes) else field.encode("utf-8") for field in self.fields]
        self.command_head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(encoded))
        self.command_fields = b"".join(b"$%d\r\n%s\r\n" % (len(field), field) for field in encoded)

    def _stock_seconds(self, raw: bytes | None) -> int:
        """What the stock read reports for a stored Timestamp (0 when there is none)."""
        if not raw:
            return 0
        seconds = self.seconds.get(raw)
        if seconds is None:
            from google.protobuf.timestamp_pb2 import Timestamp

            stamp = Timestamp()
            stamp.ParseFromString(raw)
            when = datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1_000_000_000.0, tz=UTC)
            back = Timestamp()
            back.FromDatetime(when)
            seconds = self.seconds[raw] = back.seconds
        return seconds

    def read_one(self, key: bytes) -> tuple[np.ndarray, np.ndarray]:
        """`read([key])`: one HMGET, no arrays to fill."""
        reply, n = self._hmget([key])[0], self.n_columns
        values = np.array([[_decode_one(blob) for blob in reply[:n]]])
        stamps = np.array([[self._stock_seconds(raw) for raw in reply[n:]]], dtype=np.int64)
        return values, stamps

    def _hmget(self, keys: list[bytes]) -> list[list]:
        """One HMGET of every served field per entity key, sent together on one connection of the
        client's pool (each thread gets its own) and answered in order: a pipeline without
        redis-py's per-command packing."""
        project, head, fields = self.project, self.command_head, self.command_fields
        packed = b"".join([b"%s$%d\r\n%s\r\n%s" % (head, len(key) + len(project), key + project, fields)
                           for key in keys])
        pool = self.online_store._get_client(self.config.online_store).connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py before 5.3 names the command
            conn = pool.get_connection("HMGET")
        try:
            conn.send_packed_command([packed])
            return [conn.read_response() for _ in keys]
        except BaseException:
            conn.disconnect()  # replies may be left unread on it
            raise
        finally:
            pool.release(conn)

    def _read_into(self, keys: list[bytes], offset: int, values: np.ndarray, stamps: np.ndarray) -> None:
        """Read `keys` into rows offset.. of `values` and `stamps`."""
        replies = self._hmget(keys)
        n, rows = self.n_columns, slice(offset, offset + len(keys))
        decoded = decode_floats(list(chain.from_iterable(reply[:n] for reply in replies)))
        values[rows] = decoded.reshape(len(keys), n)
        seconds = np.fromiter((self._stock_seconds(raw) for reply in replies for raw in reply[n:]),
                              dtype=np.int64, count=len(keys) * self.n_views)
        stamps[rows] = seconds.reshape(len(keys), self.n_views)
