"""Feature views that are not all Float64 (here Int64 and String features beside Float64 ones, as a
user's own feature repo may declare): the fast materializer stores what stock `feast materialize`
stores, in SQLite and in Redis (where such a view goes through redis-py's pipeline; in an empty
database the other views of the job are then written by HSETs too, not RESTOREs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from custintel import materialization


def _store(tmp_path, name: str, online, frame: pd.DataFrame):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String
    from feast.value_type import ValueType

    root = tmp_path / name
    root.mkdir()
    frame.to_parquet(root / "source.parquet", index=False)
    config = RepoConfig(project="typed", provider="local", registry=str(root / "registry.db"),
                        online_store=online(name, root), offline_store=DaskOfflineStoreConfig(),
                        entity_key_serialization_version=3, repo_path=root)
    store = FeatureStore(config=config, repo_path=str(root))
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    source = FileSource(name="typed_source", path=str(root / "source.parquet"),
                        timestamp_field="event_timestamp")
    mixed = FeatureView(name="mixed", entities=[customer], ttl=timedelta(days=30), source=source,
                        schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64),
                                Field(name="channel", dtype=String)])
    floats = FeatureView(name="floats", entities=[customer], ttl=timedelta(days=30), source=source,
                         schema=[Field(name="score", dtype=Float64)])
    store.apply([customer, source, mixed, floats])
    return store


def _frame() -> pd.DataFrame:
    """Four rows per customer on distinct days (a tie on the timestamp has no one newest row)."""
    rng = np.random.default_rng(5)
    customers = np.repeat(np.arange(150, dtype="int64"), 4)
    days = np.concatenate([rng.choice(60, 4, replace=False) for _ in range(150)])
    n = len(customers)
    frame = pd.DataFrame({
        "customer_id": customers,
        "event_timestamp": pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(days, unit="D"),
        "spend": rng.normal(size=n), "orders": rng.integers(0, 40, n).astype("int64"),
        "channel": rng.choice(["web", "app", "store"], n), "score": rng.normal(size=n)})
    frame.loc[frame.index[::11], "spend"] = np.nan
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _stored(store, redis_url: str | None) -> dict:
    """Every Redis hash (fields in stored order), or every SQLite row of each view's table."""
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        return {key: list(client.hgetall(key).items()) for key in sorted(client.keys())}
    import sqlite3

    online = store.config.online_store

    conn = sqlite3.connect(online.path)
    tables = {name: conn.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{name}" '
                                 "ORDER BY entity_key, feature_name").fetchall()
              for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    return tables


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_int_and_string_features_store_what_stock_stores(tmp_path, request, backend):
    urls = {"stock": None, "fast": None}
    if backend == "redis":
        import redis
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        server = request.getfixturevalue("redis_server")
        urls = {"stock": f"{server}/12", "fast": f"{server}/13"}
        for url in urls.values():
            redis.Redis.from_url(url).flushdb()

        def online(name, root):
            host_port, db = urls[name].removeprefix("redis://").split("/")
            return RedisOnlineStoreConfig(connection_string=f"{host_port},db={db}")
    else:
        from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

        def online(name, root):
            return SqliteOnlineStoreConfig(path=str(root / "online.db"))

    frame = _frame()
    stock, fast = (_store(tmp_path, name, online, frame) for name in ("stock", "fast"))
    start, middle, end = (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC),
                          datetime(2025, 5, 1, tzinfo=UTC))
    for window in ((start, middle), (start, end)):  # into an empty store, then over it
        stock.materialize(*window)
        materialization.materialize(fast, *window, chunk_rows=64)
        stored = _stored(fast, urls["fast"])
        assert stored == _stored(stock, urls["stock"])
        assert sum(map(len, stored.values())) >= 100
