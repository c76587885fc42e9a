"""feature_store.sqlite_layout: the compact SQLite layout (WITHOUT ROWID, no `_ek` index, 16 KiB pages
in a new file) holds the same rows as Feast's own layout, both are read and written by stock Feast,
conversion goes both ways without losing a row (also when it stops half-way), and Feast's own apply
re-creating its index is undone by the next custintel apply. Also: the vectorised value_text
formatting equals Python's repr."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from custintel import feature_store, materialization, sqlite_layout
from custintel.config import settings_from_dict
from tests.conftest import tiny_params
from tests.test_feature_store import _offline_frame, _online, _store, _stored


def _settings(tmp_path, name: str, layout: str):
    raw = tiny_params(tmp_path / name / "data")
    raw["feature_store"] = {"online_store": "sqlite", "sqlite_layout": layout}
    return settings_from_dict(raw)


def _layouts(store) -> set[str]:
    from feast.infra.online_stores.sqlite import _table_id

    conn = store._get_provider().online_store._get_conn(store.config)
    return {sqlite_layout.table_layout(conn, _table_id(store.project, view, False))
            for view in store.list_feature_views()}


def _page_size(store) -> int:
    conn = store._get_provider().online_store._get_conn(store.config)
    return conn.execute("PRAGMA page_size").fetchone()[0]


def test_compact_and_feast_layouts_hold_the_same_rows_and_convert_both_ways(tmp_path):
    feast_settings = _settings(tmp_path, "feast", "feast")
    compact_settings = _settings(tmp_path, "compact", "compact")
    frame = _offline_frame(feast_settings, n_customers=60, stale=5, seed=2)
    feast_store, compact = _store(feast_settings, frame), _store(compact_settings, frame)
    assert _layouts(feast_store) == {"feast"} and _layouts(compact) == {"compact"}
    assert (_page_size(feast_store), _page_size(compact)) == (4096, sqlite_layout.COMPACT_PAGE_BYTES)

    feature_store.materialize_latest(compact, compact_settings)  # the fast path into compact tables
    summary = feature_store.materialize_latest(feast_store, feast_settings)
    rows = _stored(feast_store, feast_settings)
    assert _stored(compact, compact_settings) == rows and sum(map(len, rows.values())) > 1000
    ids = [*range(60), 12345]
    assert _online(compact, ids) == _online(feast_store, ids)

    # stock Feast writes into the compact tables (its upsert) and reads them: same rows as the fast path
    stock_settings = _settings(tmp_path, "stock", "compact")
    stock = _store(stock_settings, frame)
    from datetime import datetime

    stock.materialize(start_date=datetime.fromisoformat(summary["materialized_from"]),
                      end_date=datetime.fromisoformat(summary["materialized_until"]))
    assert _stored(stock, stock_settings) == rows

    # Feast's layout -> compact -> Feast's: every row kept, and reads unchanged
    tables = feature_store.arrange_sqlite_tables(feast_store, "compact")
    assert len(tables) == len(feast_store.list_feature_views()) and _layouts(feast_store) == {"compact"}
    assert _stored(feast_store, feast_settings) == rows and _online(feast_store, ids) == _online(compact, ids)
    assert feature_store.arrange_sqlite_tables(feast_store, "compact") == []  # nothing left to do
    feature_store.arrange_sqlite_tables(feast_store, "feast")
    assert _layouts(feast_store) == {"feast"} and _stored(feast_store, feast_settings) == rows

    # Feast's own apply puts its `_ek` index back; custintel's apply drops it again
    compact.apply(compact.list_feature_views())
    assert _layouts(compact) == {"compact+ek"}
    feature_store.apply_definitions(compact, compact_settings)
    assert _layouts(compact) == {"compact"} and _stored(compact, compact_settings) == rows


class _FailsOnDrop:
    """A connection that fails when the rebuild drops the old table (after copying its rows)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, *args):
        if sql.startswith("DROP TABLE") and "IF EXISTS" not in sql:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_conversion_that_fails_half_way_loses_nothing(tmp_path):
    settings = _settings(tmp_path, "feast", "feast")
    store = _store(settings, _offline_frame(settings, n_customers=30, stale=3))
    feature_store.materialize_latest(store, settings)
    rows = _stored(store, settings)
    from feast.infra.online_stores.sqlite import _table_id

    conn = store._get_provider().online_store._get_conn(store.config)
    table = _table_id(store.project, store.list_feature_views()[0], False)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        sqlite_layout.arrange(_FailsOnDrop(conn), [table], "compact")
    assert not conn.in_transaction and sqlite_layout.table_layout(conn, table) == "feast"
    assert _stored(store, settings) == rows
    assert sqlite_layout.arrange(conn, [table], "compact") == [table]  # and it goes through next time
    assert _stored(store, settings) == rows


def test_an_unknown_layout_is_refused_naming_the_field(tmp_path):
    with pytest.raises(Exception, match="sqlite_layout"):
        _settings(tmp_path, "bad", "wide")
    with pytest.raises(ValueError, match="feature_store.sqlite_layout"):
        sqlite_layout.arrange(sqlite3.connect(":memory:"), [], "wide")


def test_float_reprs_equal_python_repr():
    rng = np.random.default_rng(7)
    edges = [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0,
             1e15, 123456789.0, 1e22, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
             np.inf, -np.inf, np.nan, 100.0, 1e10, 12345678901.5]
    values = np.concatenate([
        edges, rng.gamma(2.0, 10.0, 20_000).round(4), rng.integers(-10**6, 10**6, 20_000).astype(float),
        rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 22, 20_000),
        (rng.standard_normal(20_000) * 100).astype(np.float32).astype(np.float64),
        np.frombuffer(rng.bytes(8 * 20_000), dtype=np.float64)])
    texts = materialization.float_reprs(values).to_pylist()
    expected = [None if v != v else repr(v) for v in values.tolist()]
    assert texts == expected
