"""Feast objects for the customer features: entity, file source, one feature view per feature
group (purchase, basket, engagement, review text) and the model's feature service.

Only declarations live here (`feast apply` imports every file of this folder). The platform
calls `build_definitions()` with paths under its data directory and the groups its data has
tables for; the module-level objects serve the `feast` CLI run from this folder
(feature_store.yaml) on the default data directory, with every group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64
from feast.value_type import ValueType

from custintel.features.schema import ENTITY_KEY, GROUPS, TIMESTAMP, FeatureGroup

FEATURE_SERVICE = "churn_value_v1"


def build_definitions(features_path: str, ttl_days: int, groups: Sequence[FeatureGroup] = GROUPS) -> list:
    customer = Entity(name="customer", join_keys=[ENTITY_KEY], value_type=ValueType.INT64,
                      description="A shop customer")
    source = FileSource(name="customer_features_source", path=features_path, timestamp_field=TIMESTAMP)
    views = [FeatureView(
        name=group.name,
        entities=[customer],
        ttl=timedelta(days=ttl_days),
        schema=[Field(name=name, dtype=Float64, description=text) for name, text in group.features.items()],
        source=source,
        online=True,
        description=group.description,
        tags={"tables": ",".join(group.tables)},
    ) for group in groups]
    service = FeatureService(name=FEATURE_SERVICE, features=views,
                             description="Features of the churn + value model")
    return [customer, source, *views, service]


(customer, customer_source, purchase_features, basket_features, engagement_features, text_features,
 churn_value_v1) = (
    build_definitions(
        os.environ.get("CUSTINTEL_FEATURES_PATH", "../data/offline/customer_features.parquet"),
        int(os.environ.get("CUSTINTEL_TTL_DAYS", "90")),
    ))
