"""A second SQLite writer for loads into empty online-store tables.

SQLite lets one connection at a time write a database file, so a load into the online store runs
its B-tree inserts on one core. For a view whose table is empty when the load starts, those inserts
can instead go into a staging file beside the store (its own connection, so on the other core, with
no journal and no fsync: the file is thrown away), and the finished table is then copied in with
`INSERT INTO main.t SELECT * FROM stage.t`. Into an empty table of the same schema SQLite runs
that statement with its transfer optimisation: records are copied in key order as they are, without
being decoded, re-checked or looked up, several times faster than inserting them.

The rows stored are the same either way: the staging table is created with the store's own
`CREATE TABLE` (and index) statements, and a table that is no longer empty when the copy runs is
upserted into instead, as a direct write would have been.

Failure leaves the store as a direct write would: the copy is one transaction (all staged tables or
none), the staging file is deleted when the load ends, and one left behind by a killed process is
deleted by the next load.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from custintel.sqlite_layout import quote_identifier

_SCHEMA = "custintel_stage"
_SUFFIX = ".staging-"


def is_empty(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute(f"SELECT 1 FROM main.{quote_identifier(table)} LIMIT 1").fetchone() is None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: take every process as alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(db_path: Path) -> list[Path]:
    """Delete staging files of `db_path` left by processes that no longer run."""
    removed = []
    for path in db_path.parent.glob(db_path.name + _SUFFIX + "*"):
        pid = path.name.rsplit(_SUFFIX, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class Staging:
    """A staging file holding empty copies of `tables` of the store at `db_path` (`main` is the
    store's connection), written through `conn`; `copy_into` moves its rows into the store."""

    def __init__(self, main: sqlite3.Connection, db_path: Path, tables: list[str]):
        remove_stale(db_path)
        self.path = db_path.parent / f"{db_path.name}{_SUFFIX}{os.getpid()}"
        self.path.unlink(missing_ok=True)
        self.tables = list(tables)
        page_size = main.execute("PRAGMA main.page_size").fetchone()[0]
        statements = []
        for table in self.tables:
            statements += [row[0] for row in main.execute(
                "SELECT sql FROM main.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type = 'index'", (table,))]
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            for pragma in (f"page_size = {page_size}", "journal_mode = OFF", "synchronous = OFF",
                           "locking_mode = EXCLUSIVE"):
                self.conn.execute(f"PRAGMA {pragma}")
            for statement in statements:
                self.conn.execute(statement)
            self.conn.isolation_level = ""  # writers use `with conn:` transactions, as on the store
        except BaseException:
            self.discard()
            raise

    def copy_into(self, main: sqlite3.Connection, upsert: str) -> None:
        """Copy every staged table into the store in one transaction: by SQLite's transfer
        optimisation into a table that is still empty, else by `INSERT ... SELECT ... <upsert>`."""
        self.conn.close()
        if main.in_transaction:
            main.commit()
        main.execute(f"ATTACH DATABASE ? AS {_SCHEMA}", (str(self.path),))
        try:
            main.execute("BEGIN IMMEDIATE")
            try:
                for table in self.tables:
                    source, target = f"{_SCHEMA}.{quote_identifier(table)}", f"main.{quote_identifier(table)}"
                    if is_empty(main, table):
                        main.execute(f"INSERT INTO {target} SELECT * FROM {source}")
                    else:
                        main.execute(f"INSERT INTO {target} SELECT * FROM {source} WHERE true {upsert}")
                main.commit()
            except BaseException:
                main.rollback()
                raise
        finally:
            main.execute(f"DETACH DATABASE {_SCHEMA}")

    def discard(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        self.path.unlink(missing_ok=True)
