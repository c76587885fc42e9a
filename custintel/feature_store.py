"""Feast feature store on the data directory: apply, materialize, training set and online reads.

    custintel feast-apply && custintel materialize [--incremental]

The registry lives under <data_dir>/feast; the online store is SQLite there, or Redis
(params.yaml `feature_store`). The offline source is the point-in-time parquet written by
`custintel features`. Materialization goes through custintel.materialization (Feast's layout and
watermarks, many times faster than `FeatureStore.materialize`). Training and serving both read
the same feature service. `import feast` takes ~10 s, so it is imported only inside functions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from custintel.config import Settings
from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from custintel.paths import DataPaths

log = logging.getLogger(__name__)


def open_store(settings: Settings):
    from feast import FeatureStore
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.repo_config import RepoConfig

    paths = DataPaths(settings.data_dir)
    paths.feast.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="custintel",
        provider="local",
        registry=str(paths.feast / "registry.db"),
        online_store=_online_store_config(settings),
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=paths.feast,  # relative paths resolve here, not against the cwd
    )
    return FeatureStore(config=config, repo_path=str(paths.feast))


def _online_store_config(settings: Settings):
    section = settings.feature_store
    if section.online_store == "redis":
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        return RedisOnlineStoreConfig(connection_string=section.feast_redis_connection_string())
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    return SqliteOnlineStoreConfig(path=str(_sqlite_path(settings)))


def _sqlite_path(settings: Settings) -> Path:
    return DataPaths(settings.data_dir).feast / "online_store.db"


def apply_definitions(store, settings: Settings) -> list[str]:
    """`feast apply` of the objects in feature_repo/definitions.py for the feature groups the
    current data has; views of groups it lacks (e.g. after switching to an imported log) are
    deleted so nothing serves stale features. Returns the applied objects' names."""
    from custintel.steps.features import built_groups
    from feature_repo.definitions import build_definitions

    objects = build_definitions(str(DataPaths(settings.data_dir).features_file),
                                settings.features.horizon_days, built_groups(settings))
    names = {obj.name for obj in objects}
    stale = [view for view in store.list_feature_views() if view.name not in names]
    sqlite = settings.feature_store.online_store == "sqlite"
    if sqlite:
        from custintel import sqlite_layout

        sqlite_layout.prepare_file(_sqlite_path(settings), settings.feature_store.sqlite_layout)
    store.apply(objects, objects_to_delete=stale, partial=not stale)
    store.__dict__.pop(_READER_ATTR, None)  # the fast reader resolved the old service
    if sqlite:
        arrange_sqlite_tables(store, settings.feature_store.sqlite_layout)
    return [obj.name for obj in objects]


def arrange_sqlite_tables(store, layout: str) -> list[str]:
    """Store the SQLite online store's view tables in `layout` (custintel.sqlite_layout)."""
    from feast.infra.online_stores.sqlite import _table_id

    from custintel import sqlite_layout

    versioning = store.config.registry.enable_online_feature_view_versioning
    tables = [_table_id(store.project, view, versioning) for view in store.list_feature_views()]
    conn = store._get_provider().online_store._get_conn(store.config)
    changed = sqlite_layout.arrange(conn, tables, layout)
    if changed:
        log.info("SQLite online tables now in the %s layout: %s", layout, changed)
    return changed


def materialization_end(settings: Settings) -> datetime:
    """The end of the window that holds the newest snapshot (Feast's window includes its end)."""
    return settings.snapshot_dates()[-1] + timedelta(seconds=1)


def materialize_latest(store, settings: Settings) -> dict:
    """Load the newest snapshot of every customer into the online store (idempotent: rerunning
    writes the same values). The window is one TTL back from the newest snapshot."""
    from custintel import materialization

    end = materialization_end(settings)
    start = end - timedelta(seconds=1) - timedelta(days=settings.features.horizon_days)
    views = materialization.materialize(store, start, end,
                                        chunk_rows=settings.feature_store.materialize_chunk_rows,
                                        sqlite_sync=settings.feature_store.sqlite_sync)
    return {"materialized_from": start.isoformat(), "materialized_until": end.isoformat(),
            "online_store": settings.feature_store.online_store, "views": views}


def materialize_incremental(store, settings: Settings, end_date: datetime | None = None) -> dict:
    """Load what arrived since each view's watermark up to `end_date` (default: just past the
    newest snapshot). Idempotent: a rerun, or a rerun after a crash, leaves the same values."""
    from custintel import materialization

    end = end_date or materialization_end(settings)
    views = materialization.materialize_incremental(
        store, end, chunk_rows=settings.feature_store.materialize_chunk_rows,
        sqlite_sync=settings.feature_store.sqlite_sync)
    return {"materialized_until": materialization.check_end_date(end).isoformat(),
            "online_store": settings.feature_store.online_store, "incremental": True, "views": views}


def feature_service(store):
    from feature_repo.definitions import FEATURE_SERVICE

    return store.get_feature_service(FEATURE_SERVICE)


def service_feature_names(store) -> list[str]:
    """The features the model's feature service serves now, in its order."""
    return [field.name for projection in feature_service(store).feature_view_projections
            for field in projection.features]


def training_set(store, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the feature service onto `entity_df` (customer_id, event_timestamp, labels).

    Feast's file store sorts rows, collapses duplicate (id, timestamp) rows and drops rows outside
    the TTL; querying unique keys and left-merging back keeps every entity row, in order.
    """
    keys = [ENTITY_KEY, TIMESTAMP]
    entities = entity_df.copy()
    entities[TIMESTAMP] = pd.to_datetime(entities[TIMESTAMP], utc=True)
    features = store.get_historical_features(
        entity_df=entities[keys].drop_duplicates(), features=feature_service(store)).to_df()
    features[TIMESTAMP] = pd.to_datetime(features[TIMESTAMP], utc=True)
    return entities.merge(features, on=keys, how="left")


def feature_ttls(store) -> dict[str, timedelta | None]:
    """TTL of the feature view of each feature the service serves."""
    return {field.name: store.get_feature_view(projection.name).ttl
            for projection in feature_service(store).feature_view_projections
            for field in projection.features}


_READER_ATTR = "_custintel_online_reader"


def online_reader(store):
    """The fast reader of the feature service on `store` (custintel.online_reader), built on first use
    and kept on the store; None when the online store or the service is not one it supports."""
    reader = store.__dict__.get(_READER_ATTR, False)
    if reader is False:
        from custintel.online_reader import OnlineReader

        reader = OnlineReader.for_store(store)
        setattr(store, _READER_ATTR, reader)
    return reader


def online_features(store, customer_ids: list[int], feature_names: list[str],
                    as_of: datetime | None = None) -> pd.DataFrame:
    """Online feature rows for `customer_ids` (in order); unknown ids come back as all-NaN rows.

    Feast's online read does not apply the TTL: a value whose event time is more than its view's
    TTL before `as_of` (default: now) is stale and comes back as NaN, as the offline join does.
    Reads go through the fast reader (same values as the stock path, float64 columns) where the
    online store is supported, else through `stock_online_features`."""
    reader = online_reader(store)
    if reader is not None:
        return reader.read(customer_ids, feature_names, as_of=as_of)
    return stock_online_features(store, customer_ids, feature_names, as_of=as_of)


def stock_online_features(store, customer_ids: list[int], feature_names: list[str],
                          as_of: datetime | None = None) -> pd.DataFrame:
    """`online_features` through Feast's `get_online_features`, the TTL applied afterwards."""
    response = store.get_online_features(
        features=feature_service(store), entity_rows=[{ENTITY_KEY: int(i)} for i in customer_ids]
    ).to_dict(include_event_timestamps=True)
    now = (as_of or datetime.now(UTC)).timestamp()
    ttls = feature_ttls(store)
    columns = {ENTITY_KEY: response[ENTITY_KEY]}
    for name in feature_names:
        values, ttl = response[name], ttls.get(name)
        if ttl:
            oldest = now - ttl.total_seconds()
            values = [None if stamp is None or stamp < oldest else value
                      for value, stamp in zip(values, response[f"{name}__ts"], strict=True)]
        columns[name] = values
    return pd.DataFrame(columns)
