"""custintel.sqlite_staging: a load into empty SQLite online-store tables writes part of the views
into a staging file on a second thread and copies them in. The rows stored are those a direct
write stores; tables that already hold rows are written directly; a failed load leaves no staging
file, records no watermark and is repaired by running it again; staging files of dead processes
are removed; a table that gained rows before the copy is upserted into."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from custintel import feature_store, materialization, sqlite_staging
from custintel.config import settings_from_dict
from tests.conftest import tiny_params
from tests.test_feature_store import _offline_frame, _online, _store, _stored, _watermarks


@pytest.fixture
def make_settings(tmp_path):
    """Settings of a fresh SQLite store named `name` writing `chunk_rows` entities per chunk."""

    def make(name: str, chunk_rows: int = 50_000):
        raw = tiny_params(tmp_path / name / "data")
        raw["feature_store"] = {"online_store": "sqlite", "materialize_chunk_rows": chunk_rows}
        return settings_from_dict(raw)

    return make


@pytest.fixture
def copies(monkeypatch) -> list[list[str]]:
    """The tables each staged copy moved into the store."""
    seen: list[list[str]] = []
    real = sqlite_staging.Staging.copy_into

    def spy(self, main, upsert):
        seen.append(sorted(self.tables))
        return real(self, main, upsert)

    monkeypatch.setattr(sqlite_staging.Staging, "copy_into", spy)
    return seen


def _direct_only(monkeypatch) -> None:
    monkeypatch.setattr(materialization._SqliteWriter, "begin", lambda self, views: None)


def _two_stores(make_settings, names: tuple[str, str], n_customers: int, stale: int, seed: int):
    """(settings, store) of two fresh stores over the same offline frame."""
    settings = [make_settings(name, 100) for name in names]
    frame = _offline_frame(settings[0], n_customers=n_customers, stale=stale, seed=seed)
    return [(each, _store(each, frame)) for each in settings]


def _staging_files(settings) -> list[Path]:
    return sorted((Path(settings.data_dir) / "feast").glob("*.staging-*"))


def _view_tables(store) -> list[str]:
    from feast.infra.online_stores.sqlite import _table_id

    return sorted(_table_id(store.project, view, False) for view in store.list_feature_views())


def test_a_load_into_empty_tables_is_staged_and_stores_what_a_direct_write_stores(make_settings, monkeypatch,
                                                                                   copies):
    (staged_settings, staged), (direct_settings, direct) = _two_stores(make_settings, ("staged", "direct"),
                                                                       n_customers=300, stale=11, seed=3)
    feature_store.materialize_latest(staged, staged_settings)
    assert len(copies) == 1 and copies[0] and set(copies[0]) < set(_view_tables(staged))
    with monkeypatch.context() as patch:
        _direct_only(patch)
        feature_store.materialize_latest(direct, direct_settings)
    assert len(copies) == 1  # the direct load staged nothing
    assert _stored(staged, staged_settings) == _stored(direct, direct_settings)
    ids = [*range(300), 99999]
    assert _online(staged, ids) == _online(direct, ids)
    assert _watermarks(staged) == _watermarks(direct)
    assert _staging_files(staged_settings) == []


def test_tables_that_hold_rows_are_written_directly(make_settings, monkeypatch, copies):
    names = ("incremental", "reference")
    (settings, store), (reference_settings, reference) = _two_stores(make_settings, names,
                                                                     n_customers=120, stale=4, seed=5)
    middle = settings.snapshot_dates()[-1] - timedelta(days=45)
    feature_store.materialize_incremental(store, settings, end_date=middle)
    assert len(copies) == 1  # the first load found the tables empty
    feature_store.materialize_incremental(store, settings)
    assert len(copies) == 1  # the second did not stage
    with monkeypatch.context() as patch:
        _direct_only(patch)
        feature_store.materialize_incremental(reference, reference_settings, end_date=middle)
        feature_store.materialize_incremental(reference, reference_settings)
    assert _stored(store, settings) == _stored(reference, reference_settings)
    ids = [*range(120), 777]
    assert _online(store, ids) == _online(reference, ids)


def test_a_failed_staged_load_leaves_no_staging_file_and_is_repaired_by_a_rerun(make_settings, monkeypatch,
                                                                                copies):
    (settings, store), (reference_settings, reference) = _two_stores(make_settings, ("failing", "reference"),
                                                                     n_customers=200, stale=3, seed=7)
    feature_store.materialize_latest(reference, reference_settings)
    copies.clear()
    real = materialization._execute
    written = {"store": 0}

    def staging_lane_fails(conn, sql, params):
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "off":  # the staging file
            raise sqlite3.OperationalError("simulated disk failure in the staging file")
        written["store"] += 1
        return real(conn, sql, params)

    with monkeypatch.context() as patch:
        patch.setattr(materialization, "_execute", staging_lane_fails)
        with pytest.raises(sqlite3.OperationalError, match="simulated disk failure"):
            feature_store.materialize_latest(store, settings)
    assert written["store"] > 0 and copies == [] and _staging_files(settings) == []
    assert set(_watermarks(store).values()) == {None}  # nothing recorded
    feature_store.materialize_latest(store, settings)  # the tables written directly are not empty now
    ids = [*range(200), 5555]
    assert _online(store, ids) == _online(reference, ids)
    assert _stored(store, settings) == _stored(reference, reference_settings)


def test_staging_files_of_dead_processes_are_removed(tmp_path):
    db = tmp_path / "online_store.db"
    sqlite3.connect(db).close()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = tmp_path / f"online_store.db.staging-{finished.stdout.strip()}"
    live = tmp_path / "online_store.db.staging-1"  # pid 1 runs
    other = tmp_path / "other.db.staging-99999999"
    for path in (dead, live, other):
        path.write_bytes(b"x")
    assert sqlite_staging.remove_stale(db) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


def test_a_table_that_gained_rows_before_the_copy_is_upserted_into(tmp_path):
    db = tmp_path / "online_store.db"
    main = sqlite3.connect(db)
    main.execute("CREATE TABLE t (k BLOB, f TEXT, v BLOB, PRIMARY KEY (k, f)) WITHOUT ROWID")
    staging = sqlite_staging.Staging(main, db, ["t"])
    with staging.conn:
        staging.conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(b"a", "x", b"1"), (b"b", "x", b"2")])
    with main:
        main.executemany("INSERT INTO t VALUES (?, ?, ?)", [(b"a", "x", b"old"), (b"c", "x", b"3")])
    staging.copy_into(main, "ON CONFLICT(k, f) DO UPDATE SET v = excluded.v")
    staging.discard()
    assert main.execute("SELECT * FROM t ORDER BY k").fetchall() == [(b"a", "x", b"1"), (b"b", "x", b"2"),
                                                                     (b"c", "x", b"3")]
    assert not staging.path.exists()
    assert main.execute("PRAGMA database_list").fetchall()[-1][1] == "main"  # detached again
