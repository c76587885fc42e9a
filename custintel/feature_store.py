"""Feast feature store on the data directory: apply, materialize, training set and online reads.

    custintel feast-apply && custintel materialize

Registry and SQLite online store live under <data_dir>/feast; the offline source is the
point-in-time parquet written by `custintel features`. Training and serving both read the
same feature service. `import feast` takes ~10 s, so it is imported only inside functions.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from custintel.config import Settings
from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from custintel.paths import DataPaths


def open_store(settings: Settings):
    from feast import FeatureStore
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig

    paths = DataPaths(settings.data_dir)
    paths.feast.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="custintel",
        provider="local",
        registry=str(paths.feast / "registry.db"),
        online_store=SqliteOnlineStoreConfig(path=str(paths.feast / "online_store.db")),
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=paths.feast,  # relative paths resolve here, not against the cwd
    )
    return FeatureStore(config=config, repo_path=str(paths.feast))


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
    store.apply(objects, objects_to_delete=stale, partial=not stale)
    return [obj.name for obj in objects]


def materialize_latest(store, settings: Settings) -> dict:
    """Load the newest snapshot of every customer into the online store (idempotent: rerunning
    writes the same values). The window is one TTL back from the newest snapshot."""
    latest = settings.snapshot_dates()[-1]
    start, end = latest - timedelta(days=settings.features.horizon_days), latest + timedelta(seconds=1)
    store.materialize(start_date=start, end_date=end)
    return {"materialized_from": start.isoformat(), "materialized_until": end.isoformat()}


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


def online_features(store, customer_ids: list[int], feature_names: list[str]) -> pd.DataFrame:
    """Online feature rows for `customer_ids` (in order); unknown ids come back as all-NaN rows."""
    response = store.get_online_features(
        features=feature_service(store), entity_rows=[{ENTITY_KEY: int(i)} for i in customer_ids]
    ).to_dict()
    return pd.DataFrame({name: response[name] for name in [ENTITY_KEY, *feature_names]})
