"""Property test: the training rows Feast returns (feature_store.training_set over the model's
feature service) equal a brute-force as-of join, for random feature histories and random entity
rows, duplicate (customer, timestamp) rows included: every entity row comes back, in order, with
the newest feature row at or before its timestamp and within the TTL, or with nulls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from custintel import feature_store
from custintel.config import settings_from_dict
from custintel.features.schema import ENTITY_KEY, PURCHASE, TIMESTAMP
from custintel.paths import DataPaths
from tests.conftest import tiny_params

TTL_DAYS = 90
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = list(PURCHASE.features)


@pytest.fixture(scope="module")
def store_settings(tmp_path_factory):
    raw = tiny_params(tmp_path_factory.mktemp("pit") / "data")
    raw["features"]["horizon_days"] = TTL_DAYS
    s = settings_from_dict(raw)
    paths = DataPaths(s.data_dir)
    paths.offline.mkdir(parents=True, exist_ok=True)
    (paths.offline / "features.json").write_text(json.dumps({"feature_groups": [PURCHASE.name]}))
    return s


def as_of_oracle(features: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """For each entity row: the feature row of the same customer with the largest timestamp
    <= the entity timestamp and > entity timestamp - TTL (nulls when there is none)."""
    out = []
    for _, row in entities.iterrows():
        ts = row[TIMESTAMP]
        hits = features[(features[ENTITY_KEY] == row[ENTITY_KEY]) & (features[TIMESTAMP] <= ts)
                        & (features[TIMESTAMP] >= ts - timedelta(days=TTL_DAYS))]
        best = hits.sort_values(TIMESTAMP).iloc[-1] if len(hits) else None
        out.append({name: (best[name] if best is not None else np.nan) for name in NAMES})
    return pd.DataFrame(out, columns=NAMES)


day = st.integers(min_value=0, max_value=400)
history = st.lists(st.tuples(st.integers(1, 6), day), min_size=1, max_size=25, unique=True)
entity_rows = st.lists(st.tuples(st.integers(1, 7), day), min_size=1, max_size=20)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history, entity_rows=entity_rows, duplicate=st.booleans())
# inside the TTL (70 days), beyond it (95), the same day, before any row, another customer's rows
@example(history=[(1, 0), (2, 50)], entity_rows=[(1, 70), (1, 95), (1, 0), (2, 10), (2, 120)], duplicate=True)
def test_feast_training_rows_equal_a_brute_force_as_of_join(store_settings, history, entity_rows, duplicate):
    rng = np.random.default_rng(len(history))
    features = pd.DataFrame(history, columns=[ENTITY_KEY, "day"])
    features[TIMESTAMP] = [T0 + timedelta(days=int(d)) for d in features["day"]]
    for name in NAMES:
        features[name] = rng.normal(size=len(features)).round(6)
    features = features.drop(columns="day")
    features[ENTITY_KEY] = features[ENTITY_KEY].astype("int64")
    features.to_parquet(DataPaths(store_settings.data_dir).features_file, index=False)
    store = feature_store.open_store(store_settings)
    feature_store.apply_definitions(store, store_settings)

    rows = entity_rows + (entity_rows[:3] if duplicate else [])  # exact duplicate entity rows
    entities = pd.DataFrame(rows, columns=[ENTITY_KEY, "day"])
    entities[TIMESTAMP] = [T0 + timedelta(days=int(d), hours=12) for d in entities["day"]]
    entities = entities.drop(columns="day").assign(label=np.arange(len(entities)))
    entities[ENTITY_KEY] = entities[ENTITY_KEY].astype("int64")

    got = feature_store.training_set(store, entities)
    assert len(got) == len(entities) and got["label"].tolist() == entities["label"].tolist()
    expected = as_of_oracle(features, entities)
    pd.testing.assert_frame_equal(got[NAMES].reset_index(drop=True).astype(float), expected.astype(float),
                                  check_exact=False, rtol=1e-9)
