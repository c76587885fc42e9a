"""Online feature rows with their event timestamps and a staleness flag, for serving.

`feature_store.online_features` hides values older than their view's TTL (NaN, as the offline join
does). Serving instead scores what the online store holds and says how old it is: per customer the
oldest event time of its feature views (`feature_timestamp`) and `stale` when any value it has is
older than its view's TTL at `as_of`. Reads go through the fast reader (custintel.online_reader)
where the store is supported, else through Feast's `get_online_features`.

A failure to reach the online store (SQLite file missing or unreadable, Redis down) is raised as
`OnlineStoreUnavailable`, which the service answers with 503; the next request tries again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from custintel import feature_store
from custintel.features.schema import ENTITY_KEY


class OnlineStoreUnavailable(Exception):
    """The online store could not be read (answered with 503)."""


def _store_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    try:
        import redis

        errors += (redis.exceptions.RedisError,)
    except ImportError:  # pragma: no cover - redis is a dependency of the Redis online store only
        pass
    return errors


@dataclass
class OnlineRows:
    ids: np.ndarray  # int64 customer ids, in request order
    values: np.ndarray  # float64 rows x the requested features, NaN where the store has none
    feature_names: list[str]
    found: np.ndarray  # bool: the store holds at least one value for the customer
    feature_ts: np.ndarray  # int64 seconds: oldest event time of the customer's views (0 = none)
    stale: np.ndarray  # bool: some value is older than its view's TTL at as_of

    @property
    def frame(self) -> pd.DataFrame:
        """customer_id + the requested features (built on demand: serving scores `values`)."""
        frame = pd.DataFrame(self.values, columns=list(self.feature_names))
        frame.insert(0, ENTITY_KEY, self.ids)
        return frame


def read(store, customer_ids: list[int], feature_names: list[str],
         as_of: datetime | None = None) -> OnlineRows:
    """Rows for `customer_ids` (in order, duplicates kept); see the module docstring."""
    now = (as_of or datetime.now(UTC)).timestamp()
    try:
        reader = feature_store.online_reader(store)
        if reader is not None:
            ids, values, stamps, too_old = _fast(reader, customer_ids, feature_names, now)
        else:
            ids, values, stamps, too_old = _stock(store, customer_ids, feature_names, now)
    except _store_errors() as exc:
        raise OnlineStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
    present = ~np.isnan(values)
    stamped = np.where(stamps > 0, stamps, np.iinfo(np.int64).max)
    oldest = stamped.min(axis=1) if stamped.shape[1] else np.zeros(len(ids), dtype=np.int64)
    return OnlineRows(ids=ids, values=values, feature_names=list(feature_names), found=present.any(axis=1),
                      feature_ts=np.where(oldest == np.iinfo(np.int64).max, 0, oldest),
                      stale=(too_old & present).any(axis=1))


def _fast(reader, customer_ids, feature_names, now):
    """Through OnlineReader's backend: values without the TTL mask, per-view stamps."""
    ids = np.asarray([int(i) for i in customer_ids], dtype=np.int64)
    unique, inverse = np.unique(ids, return_inverse=True)
    columns = [reader.columns[name] for name in feature_names]
    if len(unique) == 0:
        empty = np.empty((0, len(columns)))
        return ids, empty, np.zeros((0, 0), dtype=np.int64), empty.astype(bool)
    values, stamps = reader.backend.read(reader.entity_keys(unique))
    too_old = stamps[:, reader.view_of_column] < (now - reader.column_ttl)  # NaN TTL compares False
    inverse = inverse.reshape(-1)
    return ids, values[inverse][:, columns], stamps[inverse], too_old[inverse][:, columns]


def _seconds(stamp) -> int:
    """A response event timestamp (datetime, seconds or None) as whole seconds (0 for None)."""
    if stamp is None:
        return 0
    return int(stamp) if isinstance(stamp, int | float) else int(pd.Timestamp(stamp).timestamp())


def _stock(store, customer_ids, feature_names, now):
    """Through Feast's get_online_features with event timestamps."""
    response = store.get_online_features(
        features=feature_store.feature_service(store),
        entity_rows=[{ENTITY_KEY: int(i)} for i in customer_ids]
    ).to_dict(include_event_timestamps=True)
    ttls = feature_store.feature_ttls(store)
    n = len(customer_ids)
    values = np.full((n, len(feature_names)), np.nan)
    stamps = np.zeros((n, len(feature_names)), dtype=np.int64)
    too_old = np.zeros((n, len(feature_names)), dtype=bool)
    for j, name in enumerate(feature_names):
        values[:, j] = [np.nan if v is None else float(v) for v in response[name]]
        stamps[:, j] = [_seconds(s) for s in response[f"{name}__ts"]]
        ttl = ttls.get(name)
        if ttl:
            too_old[:, j] = stamps[:, j] < now - ttl.total_seconds()
    return np.asarray([int(i) for i in customer_ids], dtype=np.int64), values, stamps, too_old
