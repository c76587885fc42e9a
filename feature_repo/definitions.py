"""Feast objects for the customer features: entity, file source, feature view, feature service.

Only declarations live here (`feast apply` imports every file of this folder). The platform
calls `build_definitions()` with paths under its data directory; the module-level objects serve
the `feast` CLI run from this folder (feature_store.yaml) on the default data directory.
"""

from __future__ import annotations

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64
from feast.value_type import ValueType

from custintel.features.schema import ENTITY_KEY, FEATURE_NAMES, TIMESTAMP

FEATURE_VIEW = "customer_features"
FEATURE_SERVICE = "churn_value_v1"


def build_definitions(features_path: str, ttl_days: int) -> list:
    customer = Entity(name="customer", join_keys=[ENTITY_KEY], value_type=ValueType.INT64,
                      description="A shop customer")
    source = FileSource(name="customer_features_source", path=features_path, timestamp_field=TIMESTAMP)
    view = FeatureView(
        name=FEATURE_VIEW,
        entities=[customer],
        ttl=timedelta(days=ttl_days),
        schema=[Field(name=name, dtype=Float64) for name in FEATURE_NAMES],
        source=source,
        online=True,
        description="Point-in-time purchase, engagement and review features per snapshot",
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[view],
                             description="Features of the churn + value model")
    return [customer, source, view, service]


customer, customer_source, customer_features, churn_value_v1 = build_definitions(
    os.environ.get("CUSTINTEL_FEATURES_PATH", "../data/offline/customer_features.parquet"),
    int(os.environ.get("CUSTINTEL_TTL_DAYS", "90")),
)
