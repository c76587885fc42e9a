"""Feast online store (SQLite and Redis): fast materialization equals stock Feast, incremental runs are
idempotent and survive a crash, online features equal the offline point-in-time join (TTL included).

Runs on a tiny synthetic offline parquet whose columns come from the feature groups, so the tests
follow the feature definitions. The Redis cases use a throwaway redis-server (tests/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from custintel import feature_store, materialization
from custintel.config import settings_from_dict
from custintel.errors import UserError
from custintel.features.schema import ENTITY_KEY, GROUPS, TIMESTAMP
from custintel.paths import DataPaths
from tests.conftest import tiny_params

BACKENDS = ["sqlite", "redis"]
_redis_dbs = itertools.count(1)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_settings(tmp_path, backend, request):
    """settings for a fresh store named `name` (own data dir; own Redis database)."""
    url = request.getfixturevalue("redis_server") if backend == "redis" else None

    def make(name: str, chunk_rows: int = 50_000, sqlite_sync: str = "full"):
        raw = tiny_params(tmp_path / name / "data")
        raw["feature_store"] = {"online_store": backend, "materialize_chunk_rows": chunk_rows,
                                "sqlite_sync": sqlite_sync}
        if url:
            db = next(_redis_dbs) % 16
            import redis

            redis.Redis.from_url(f"{url}/{db}").flushdb()
            raw["feature_store"]["redis_url"] = f"{url}/{db}"
        return settings_from_dict(raw)

    return make


def _offline_frame(settings, n_customers: int, stale: int, seed: int = 0) -> pd.DataFrame:
    """Rows on the last snapshots for every customer; customer `stale` stops 100 days before the end
    (beyond the 90-day TTL). Some values are missing."""
    rng = np.random.default_rng(seed)
    latest = settings.snapshot_dates()[-1]
    stamps = [latest - timedelta(days=d) for d in (150, 120, 60, 30, 0)]
    rows = [(c, ts) for c in range(n_customers) for ts in stamps
            if c != stale or ts <= latest - timedelta(days=100)]
    rows += [(stale, latest - timedelta(days=100))]
    frame = pd.DataFrame(rows, columns=[ENTITY_KEY, TIMESTAMP])
    frame[ENTITY_KEY] = frame[ENTITY_KEY].astype("int64")
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    for group in GROUPS:
        for name in group.features:
            values = rng.normal(size=len(frame)).round(6)
            values[rng.random(len(frame)) < 0.05] = np.nan
            frame[name] = values
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted, like real data


def _store(settings, frame: pd.DataFrame):
    paths = DataPaths(settings.data_dir)
    paths.offline.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.features_file, index=False)
    (paths.offline / "features.json").write_text(json.dumps({"feature_groups": [g.name for g in GROUPS]}))
    store = feature_store.open_store(settings)
    feature_store.apply_definitions(store, settings)
    return store


def _online(store, ids) -> dict:
    """Raw Feast online response (values and event timestamps, no TTL applied)."""
    return store.get_online_features(features=feature_store.feature_service(store),
                                     entity_rows=[{ENTITY_KEY: int(i)} for i in ids]
                                     ).to_dict(include_event_timestamps=True)


def _watermarks(store) -> dict:
    return {view.name: view.most_recent_end_time for view in store.list_feature_views()}


def test_fast_materialization_equals_stock_feast(make_settings):
    stock_settings, fast_settings = make_settings("stock"), make_settings("fast")
    frame = _offline_frame(stock_settings, n_customers=40, stale=7)
    stock, fast = _store(stock_settings, frame), _store(fast_settings, frame)
    summary = feature_store.materialize_latest(fast, fast_settings)
    start, end = datetime.fromisoformat(summary["materialized_from"]), datetime.fromisoformat(
        summary["materialized_until"])
    stock.materialize(start_date=start, end_date=end)

    ids = [*range(40), 999]
    assert _online(fast, ids) == _online(stock, ids)
    assert _watermarks(fast) == _watermarks(stock)
    names = feature_store.service_feature_names(fast)
    as_of = fast_settings.snapshot_dates()[-1]
    served = feature_store.online_features(fast, ids, names, as_of=as_of)
    pd.testing.assert_frame_equal(served, feature_store.online_features(stock, ids, names, as_of=as_of))
    assert served.loc[served[ENTITY_KEY] == 999, names].isna().all(axis=None)
    assert served[names].notna().sum().sum() > 0.8 * 39 * len(names)


def test_sqlite_sync_off_stores_the_same_rows_and_is_restored(make_settings):
    """feature_store.sqlite_sync: off (commits do not wait for the disk) writes the same rows as the
    default, and the store's connection is back to SQLite's default (FULL) afterwards."""
    full_settings = make_settings("sync-full")
    if full_settings.feature_store.online_store != "sqlite":
        pytest.skip("a SQLite setting")
    off_settings = make_settings("sync-off", sqlite_sync="off")
    frame = _offline_frame(full_settings, n_customers=30, stale=3)
    full, off = _store(full_settings, frame), _store(off_settings, frame)
    feature_store.materialize_latest(full, full_settings)
    feature_store.materialize_latest(off, off_settings)
    assert _stored(off, off_settings) == _stored(full, full_settings)
    conn = off._get_provider().online_store._get_conn(off.config)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def _stored(store, settings) -> dict:
    """Everything the online store holds, as stored: SQLite rows (with each column's storage class)
    per view table, or every Redis hash (fields in stored order) with its TTL."""
    if settings.feature_store.online_store == "redis":
        import redis

        client = redis.Redis.from_url(settings.feature_store.redis_url)
        return {key: (list(client.hgetall(key).items()), client.ttl(key)) for key in sorted(client.keys())}
    import sqlite3

    from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

    conn = sqlite3.connect(SqliteOnlineStore._get_db_path(store.config))
    columns = ["entity_key", "feature_name", "value", "value_text", "vector_value", "event_ts", "created_ts"]
    select = ", ".join([*columns, *(f"typeof({c})" for c in columns)])
    tables = {}
    for view in store.list_feature_views():
        table = _table_id(store.config.project, view, False)
        query = f'SELECT {select} FROM "{table}" ORDER BY entity_key, feature_name'
        tables[table] = conn.execute(query).fetchall()
    conn.close()
    return tables


def test_fast_materialization_stores_the_bytes_stock_feast_stores(make_settings):
    """Row for row (SQLite) and field for field (Redis): a first load, a second window over it (upserts
    and, for Redis, entities skipped as not newer), and the same window again."""
    stock_settings, fast_settings = make_settings("stock-bytes"), make_settings("fast-bytes")
    frame = _offline_frame(stock_settings, n_customers=150, stale=4, seed=3)
    frame.loc[frame.index[::17], "recency_days"] = np.inf  # stored as the double inf, text 'inf'
    stock, fast = _store(stock_settings, frame), _store(fast_settings, frame)
    latest = stock_settings.snapshot_dates()[-1]
    windows = [(latest - timedelta(days=200), latest - timedelta(days=45)),
               (latest - timedelta(days=90), latest + timedelta(seconds=1)),
               (latest - timedelta(days=90), latest + timedelta(seconds=1))]
    for start, end in windows:
        stock.materialize(start_date=start, end_date=end)
        materialization.materialize(fast, start, end, chunk_rows=70)
        stored = _stored(fast, fast_settings)
        assert stored == _stored(stock, stock_settings)
        assert sum(len(rows) for rows in stored.values()) > 100


def test_online_equals_offline_at_the_latest_snapshot_and_ttl_hides_stale_rows(make_settings):
    settings = make_settings("parity")
    stale = 3
    store = _store(settings, _offline_frame(settings, n_customers=30, stale=stale, seed=1))
    latest = settings.snapshot_dates()[-1]
    # an earlier run loaded the stale customer's last row; the newest run has nothing newer for it
    feature_store.materialize_incremental(store, settings, end_date=latest - timedelta(days=95))
    feature_store.materialize_incremental(store, settings)
    assert _online(store, [stale])[feature_store.service_feature_names(store)[0]] != [None]  # stored

    names = feature_store.service_feature_names(store)
    sample = [0, stale, 5, 11, 17, 29]
    online = feature_store.online_features(store, sample, names, as_of=latest)
    offline = feature_store.training_set(store, pd.DataFrame({ENTITY_KEY: sample, TIMESTAMP: [latest] * 6}))
    pd.testing.assert_frame_equal(online[names].astype(float), offline[names].astype(float), check_exact=True)
    assert online.loc[online[ENTITY_KEY] == stale, names].isna().all(axis=None)
    assert online.loc[online[ENTITY_KEY] != stale, names].notna().any(axis=None)
    # read 30 days earlier, the same row is inside the TTL and served
    earlier = feature_store.online_features(store, [stale], names, as_of=latest - timedelta(days=30))
    assert earlier[names].notna().any(axis=None)


def _crash_after_first_chunk(monkeypatch):
    real, calls = materialization._write_chunk, {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("simulated crash mid-materialization")
        return real(*args, **kwargs)

    monkeypatch.setattr(materialization, "_write_chunk", crashing)


def test_a_write_redis_refuses_fails_the_load_and_records_nothing(make_settings, backend, monkeypatch):
    """The Redis writer sends each chunk's commands (here RESTOREs: the database is empty) from a
    writer thread: an error reply there fails the load before any interval is recorded, and the
    rerun (HSETs: the database is no longer empty) stores what an undisturbed load stores."""
    if backend != "redis":
        pytest.skip("a Redis reply")
    from redis.exceptions import ResponseError

    reference_settings = make_settings("reference", 100)
    frame = _offline_frame(reference_settings, n_customers=250, stale=9, seed=4)
    reference = _store(reference_settings, frame)
    real, sent = materialization._send_and_check, {"n": 0, "refuse": None}

    def counted(client, commands, replies, *ok):
        sent["n"] += 1
        if sent["n"] == sent["refuse"]:  # an unknown command after the chunk's: Redis answers an error
            commands, replies = commands + b"*1\r\n$12\r\nNOSUCHCOMMAN\r\n", replies + 1
        return real(client, commands, replies, *ok)

    monkeypatch.setattr(materialization, "_send_and_check", counted)
    feature_store.materialize_latest(reference, reference_settings)
    writes = sent["n"]
    for refused in (2, writes):  # a write in the middle, then the last (its error surfaces in `wait`)
        settings = make_settings(f"refused-{refused}", 100)
        store = _store(settings, frame)
        sent["refuse"], sent["n"] = refused, 0
        with pytest.raises(ResponseError, match="refused a write"):
            feature_store.materialize_latest(store, settings)
        assert sent["n"] >= refused and set(_watermarks(store).values()) == {None}
        sent["refuse"] = None
        feature_store.materialize_latest(store, settings)
        assert _stored(store, settings) == _stored(reference, reference_settings)
    assert _watermarks(store) == _watermarks(reference)


def test_only_a_load_into_an_empty_redis_database_skips_reading_stored_timestamps(make_settings, backend,
                                                                                  monkeypatch):
    """(That the values then equal stock's is test_fast_materialization_equals_stock_feast.)"""
    if backend != "redis":
        pytest.skip("a Redis database")
    import redis

    settings = make_settings("empty", 100)
    store = _store(settings, _offline_frame(settings, n_customers=250, stale=9, seed=6))
    evals, real_eval = [], redis.Redis.eval
    monkeypatch.setattr(redis.Redis, "eval",
                        lambda client, *args: evals.append(args[1]) or real_eval(client, *args))
    middle = settings.snapshot_dates()[-1] - timedelta(days=45)
    feature_store.materialize_incremental(store, settings, end_date=middle)
    assert evals == []  # nothing was stored before
    feature_store.materialize_incremental(store, settings)
    assert len(evals) >= 3 and max(evals) == 100  # one read per view and chunk (of up to 100 keys)


def test_a_load_into_an_empty_redis_database_restores_whole_hashes_unless_restore_is_denied(
        make_settings, backend, monkeypatch):
    """Into a database with no keys, each chunk is one RESTORE per entity holding every view's
    fields (the fixture's redis-server checks each payload in depth: sanitize-dump-payload yes); a
    user that may not run RESTORE gets the HSETs instead. Both store what stock Feast stores, field
    for field and in the same order, TTL included."""
    if backend != "redis":
        pytest.skip("a Redis database")
    import redis

    stock_settings = make_settings("stock-whole", 100)
    frame = _offline_frame(stock_settings, n_customers=120, stale=5, seed=8)
    stock = _store(stock_settings, frame)
    stock.materialize(start_date=stock_settings.snapshot_dates()[0] - timedelta(days=400),
                      end_date=stock_settings.snapshot_dates()[-1] + timedelta(seconds=1))
    expected = _stored(stock, stock_settings)

    denied = make_settings("denied", 100)
    url = denied.feature_store.redis_url
    redis.Redis.from_url(url).acl_setuser("no-restore", enabled=True, passwords=["+pw"], keys=["*"],
                                          commands=["+@all", "-restore"], reset=True)
    denied = denied.model_copy(update={"feature_store": denied.feature_store.model_copy(
        update={"redis_url": url.replace("redis://", "redis://no-restore:pw@")})})
    real, kinds = materialization._send_and_check, []

    def recorded(client, commands, replies, ok=b":"):
        kinds.append(commands.split(b"\r\n", 3)[2])  # the first command's name
        return real(client, commands, replies, ok)

    monkeypatch.setattr(materialization, "_send_and_check", recorded)
    for name, settings, command in (("restoring", make_settings("restoring", 100), b"RESTORE"),
                                    ("denied", denied, b"HSET")):
        kinds.clear()
        store = _store(settings, frame)
        materialization.materialize(store, stock_settings.snapshot_dates()[0] - timedelta(days=400),
                                    stock_settings.snapshot_dates()[-1] + timedelta(seconds=1), chunk_rows=50)
        assert set(kinds) == {command}, name
        assert len(kinds) == (3 if command == b"RESTORE" else 3 * len(GROUPS)), name  # 120 entities
        assert _stored(store, settings) == expected, name


def test_incremental_materialization_is_idempotent_and_recovers_from_a_crash(make_settings, monkeypatch):
    reference_settings, crash_settings = make_settings("reference", 100), make_settings("crash", 100)
    frame = _offline_frame(reference_settings, n_customers=250, stale=9, seed=2)
    reference, crashed = _store(reference_settings, frame), _store(crash_settings, frame)
    latest = reference_settings.snapshot_dates()[-1]
    middle = latest - timedelta(days=45)
    for store, settings in ((reference, reference_settings), (crashed, crash_settings)):
        feature_store.materialize_incremental(store, settings, end_date=middle)
    feature_store.materialize_incremental(reference, reference_settings)

    with monkeypatch.context() as patch:
        _crash_after_first_chunk(patch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            feature_store.materialize_incremental(crashed, crash_settings)
    assert set(_watermarks(crashed).values()) == {middle}  # the interrupted window is not recorded
    ids = [*range(250), 4242]
    assert _online(crashed, ids) != _online(reference, ids)  # half-written

    feature_store.materialize_incremental(crashed, crash_settings)
    assert _online(crashed, ids) == _online(reference, ids)
    assert _watermarks(crashed) == _watermarks(reference)
    again = feature_store.materialize_incremental(crashed, crash_settings)  # nothing new: same values
    assert {view["rows"] for view in again["views"].values()} == {0}
    assert _online(crashed, ids) == _online(reference, ids)


def test_feast_apply_keeps_the_incremental_watermark(tmp_path):
    settings = settings_from_dict(tiny_params(tmp_path / "data"))
    store = _store(settings, _offline_frame(settings, n_customers=20, stale=1))
    first_end = settings.snapshot_dates()[-1] - timedelta(days=40)
    feature_store.materialize_incremental(store, settings, end_date=first_end)
    assert set(_watermarks(store).values()) == {first_end}

    feature_store.apply_definitions(feature_store.open_store(settings), settings)  # `feast apply`
    store = feature_store.open_store(settings)
    assert set(_watermarks(store).values()) == {first_end}
    summary = feature_store.materialize_incremental(store, settings)
    assert {view["start"] for view in summary["views"].values()} == {first_end.isoformat()}


def test_future_end_date_is_refused(tmp_path):
    settings = settings_from_dict(tiny_params(tmp_path / "data"))
    store = _store(settings, _offline_frame(settings, n_customers=5, stale=1))
    with pytest.raises(UserError, match="end_date .* is in the future"):
        feature_store.materialize_incremental(store, settings, end_date=datetime.now(UTC) + timedelta(days=1))
    assert set(_watermarks(store).values()) == {None}


def test_online_store_settings_are_validated(tmp_path):
    raw = tiny_params(tmp_path / "data")
    raw["feature_store"] = {"online_store": "redis"}
    with pytest.raises(UserError, match=r"feature_store\.redis_url is required"):
        settings_from_dict(raw)
    raw["feature_store"] = {"online_store": "redis", "redis_url": "http://localhost:6379"}
    with pytest.raises(UserError, match=r"feature_store\.redis_url 'http://localhost:6379' is not a Redis"):
        settings_from_dict(raw)
    raw["feature_store"] = {"online_store": "memcached"}
    with pytest.raises(UserError, match=r"feature_store\.online_store"):
        settings_from_dict(raw)
    raw["feature_store"] = {"online_store": "redis", "redis_url": "rediss://:s3cret@cache.local:6380/2"}
    assert settings_from_dict(raw).feature_store.feast_redis_connection_string() == (
        "cache.local:6380,db=2,password=s3cret,ssl=true")
    raw["feature_store"] = {"online_store": "redis", "redis_url": "cache.local:6379,db=1"}
    assert settings_from_dict(raw).feature_store.feast_redis_connection_string() == "cache.local:6379,db=1"
    # an unquoted `off` in params.yaml arrives as false (YAML 1.1): it means off; anything else is refused
    raw["feature_store"] = yaml.safe_load("online_store: sqlite\nsqlite_sync: off\n")
    assert settings_from_dict(raw).feature_store.sqlite_sync == "off"
    raw["feature_store"] = {"online_store": "sqlite", "sqlite_sync": True}
    with pytest.raises(UserError, match=r"feature_store\.sqlite_sync"):
        settings_from_dict(raw)


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Stock columns are object (None) when every value is missing; the fast reader's are float64."""
    return frame.astype({name: float for name in frame.columns if name != ENTITY_KEY})


def test_fast_online_reader_equals_the_stock_read_with_ttl(make_settings):
    from custintel.online_reader import OnlineReader

    settings = make_settings("reader")
    stale = 4
    store = _store(settings, _offline_frame(settings, n_customers=60, stale=stale, seed=3))
    latest = settings.snapshot_dates()[-1]
    feature_store.materialize_incremental(store, settings, end_date=latest - timedelta(days=95))
    feature_store.materialize_incremental(store, settings)
    reader = feature_store.online_reader(store)
    assert isinstance(reader, OnlineReader)
    names = feature_store.service_feature_names(store)
    assert reader.feature_names == names
    for customer in range(-2, 65):  # the one-key path (tuples) equals the many-key path (aggregate)
        key = reader.entity_keys(np.array([customer]))[0]
        one, many = reader.backend.read_one(key), reader.backend.read([key])
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
    keys = reader.entity_keys(np.arange(-2, 65))  # >= 32 keys: split over two threads
    both = reader.backend.read(keys)
    assert (reader.backend.pool is not None) == ((os.cpu_count() or 1) > 1)
    for column, part in enumerate(both):
        one_by_one = [reader.backend.read_one(key)[column] for key in keys]
        np.testing.assert_array_equal(part, np.concatenate(one_by_one))

    rng = np.random.default_rng(0)
    id_lists = [[stale], [123456], [0], [stale, stale, 1, 999, 1, 0], [], list(range(-2, 65))]
    id_lists += [rng.integers(-5, 80, size=size).tolist() for size in (1, 7, 50, 100, 300)]
    for as_of in (latest, latest - timedelta(days=30), latest + timedelta(days=200), None):
        for ids in id_lists:
            for subset in (names, names[::-3]):
                fast = feature_store.online_features(store, ids, subset, as_of=as_of)
                assert list(fast.columns) == [ENTITY_KEY, *subset]
                assert fast[ENTITY_KEY].tolist() == [int(i) for i in ids]
                if ids:  # stock get_online_features fails on no entity rows; the fast reader returns none
                    stock = feature_store.stock_online_features(store, ids, subset, as_of=as_of)
                    pd.testing.assert_frame_equal(fast, _as_float(stock), check_exact=True)
    for as_of in (latest, latest - timedelta(days=30), latest + timedelta(days=60)):
        # one id (TTL checked view by view) equals its row of a many-id read (TTL over the matrix)
        many = feature_store.online_features(store, list(range(-2, 65)), names, as_of=as_of)
        for row, customer in enumerate(range(-2, 65)):
            one = feature_store.online_features(store, [customer], names, as_of=as_of)
            pd.testing.assert_frame_equal(one, many.iloc[[row]].reset_index(drop=True), check_exact=True)
    at_latest = feature_store.online_features(store, [stale, 1, 10**9], names, as_of=latest)
    assert at_latest.loc[[0, 2], names].isna().all(axis=None)  # stale, unknown
    assert at_latest.loc[1, names].notna().any()
    earlier = feature_store.online_features(store, [stale], names, as_of=latest - timedelta(days=30))
    assert earlier[names].notna().any(axis=None)  # inside the TTL 30 days earlier


def test_online_features_fall_back_to_stock_when_the_reader_is_unsupported(tmp_path, monkeypatch):
    from custintel.online_reader import OnlineReader, Unsupported

    settings = settings_from_dict(tiny_params(tmp_path / "data"))
    store = _store(settings, _offline_frame(settings, n_customers=10, stale=2))
    feature_store.materialize_latest(store, settings)

    def unsupported(self, store, service_name=None):
        raise Unsupported("test")

    monkeypatch.setattr(OnlineReader, "__init__", unsupported)
    assert feature_store.online_reader(store) is None
    names = feature_store.service_feature_names(store)
    served = feature_store.online_features(store, [1, 2, 50], names, as_of=settings.snapshot_dates()[-1])
    assert served[names].notna().any(axis=1).tolist() == [True, False, False]


def test_decode_floats_matches_feast_for_every_blob_shape():
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from custintel.online_reader import _decode_joined, decode_floats

    values = [Value(double_val=1.25), Value(), Value(double_val=0.0), Value(float_val=0.1),
              Value(int64_val=7), Value(double_val=-3e300), Value(int32_val=0)]
    blobs = [value.SerializeToString() for value in values] + [None]
    expected = [feast_value_type_to_python_type(value) for value in values] + [None]
    decoded = decode_floats(blobs)
    assert [None if np.isnan(x) else x for x in decoded.tolist()] == [
        None if x is None else float(x) for x in expected]
    doubles = [Value(double_val=x).SerializeToString() for x in (0.5, 2.0)] + [b""]
    np.testing.assert_array_equal(decode_floats(doubles), [0.5, 2.0, np.nan])
    for parts in (doubles, blobs[:-1]):  # SQLite hands the blobs over concatenated, with their lengths
        lengths = np.array([len(blob) for blob in parts])
        np.testing.assert_array_equal(_decode_joined(b"".join(parts), lengths), decode_floats(parts))
