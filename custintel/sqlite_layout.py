"""How the SQLite online store's tables are stored on disk (`feature_store.sqlite_layout`).

Feast creates one table per feature view: columns (entity_key, feature_name, value, value_text,
vector_value, event_ts, created_ts), PRIMARY KEY(entity_key, feature_name), as a rowid table plus
an index `<table>_ek` on entity_key. SQLite then keeps three B-trees per table: the rows by rowid,
the primary key, and entity_key again (the primary key's leading column already orders by it).

`compact` (the default) keeps the same table name, columns, primary key and rows, stored WITHOUT
ROWID (the primary-key B-tree holds the rows), and no `_ek` index: materialization writes one
B-tree instead of three, the file is less than half the size, and a read by entity key finds the
rows where it finds the key. Stock Feast reads and writes it with its own unchanged SQL
(`WHERE entity_key IN (...)`, `INSERT ... ON CONFLICT(entity_key, feature_name) DO UPDATE`).
Feast's vector search (`vector_enabled`, not used here) joins on rowid and needs `feast`.

A new online store file is also created with 16 KiB pages (SQLite's default is 4 KiB), which
the load fills with fewer page splits; an existing file keeps its page size.

`feast` is Feast's own layout. `arrange` converts each view's table to the configured layout after
every `custintel feast-apply`: a table in the other layout is copied into a new one and renamed
over it in one transaction (nothing is lost if it stops half-way), an empty or new table at no
cost. Feast's own `feast apply` re-creates the `_ek` index; the next `custintel feast-apply` drops it.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

LAYOUTS = ("compact", "feast")
_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)
_PRIMARY_KEY = ("entity_key", "feature_name")


COMPACT_PAGE_BYTES = 16384


def prepare_file(path: Path, layout: str) -> None:
    """Before the first table is created: give a new (absent or empty) database file the compact
    layout's page size."""
    if layout != "compact" or (path.exists() and path.stat().st_size > 0):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA page_size = {COMPACT_PAGE_BYTES}")
        conn.execute("VACUUM")  # writes the header, so the size holds for every later connection
    finally:
        conn.close()


def quote_identifier(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_layout(conn: sqlite3.Connection, table: str) -> str | None:
    """`compact`, `feast`, or None when the table does not exist. `feast` means a rowid table;
    `compact+ek` / `feast-ek` a table in one layout with (without) the `_ek` index of the other."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if row is None:
        return None
    has_ek = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                          (table + "_ek",)).fetchone() is not None
    if _WITHOUT_ROWID.search(row[0]):
        return "compact+ek" if has_ek else "compact"
    return "feast" if has_ek else "feast-ek"


def _rebuild(conn: sqlite3.Connection, table: str, layout: str) -> None:
    """Copy `table` into a new table of `layout` and rename it over the old one, in one transaction."""
    columns = conn.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
    names = [quote_identifier(column[1]) for column in columns]
    definitions = ", ".join(f"{name} {column[2]}".rstrip()
                            for name, column in zip(names, columns, strict=True))
    staging = quote_identifier(table + "__custintel_rebuild")
    suffix = " WITHOUT ROWID" if layout == "compact" else ""
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"DROP TABLE IF EXISTS {staging}")
        conn.execute(f"CREATE TABLE {staging} ({definitions}, "
                     f"PRIMARY KEY({', '.join(_PRIMARY_KEY)})){suffix}")
        listed = ", ".join(names)
        conn.execute(f"INSERT INTO {staging} ({listed}) SELECT {listed} FROM {quote_identifier(table)} "
                     f"ORDER BY {', '.join(_PRIMARY_KEY)}")
        conn.execute(f"DROP TABLE {quote_identifier(table)}")  # drops its indexes too
        conn.execute(f"ALTER TABLE {staging} RENAME TO {quote_identifier(table)}")
        if layout == "feast":
            index, quoted = quote_identifier(table + "_ek"), quote_identifier(table)
            conn.execute(f"CREATE INDEX {index} ON {quoted} (entity_key)")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def arrange(conn: sqlite3.Connection, tables: list[str], layout: str) -> list[str]:
    """Put each existing table of `tables` in `layout`; returns the tables that changed."""
    if layout not in LAYOUTS:
        raise ValueError(f"feature_store.sqlite_layout is {layout!r}: use one of {list(LAYOUTS)}")
    changed = []
    for table in tables:
        current = table_layout(conn, table)
        if current is None or current == layout:
            continue
        ek = quote_identifier(table + "_ek")
        if current == "compact+ek" and layout == "compact":
            with conn:
                conn.execute(f"DROP INDEX {ek}")
        elif current == "feast-ek" and layout == "feast":
            with conn:
                conn.execute(f"CREATE INDEX {ek} ON {quote_identifier(table)} (entity_key)")
        else:
            _rebuild(conn, table, layout)
        changed.append(table)
    return changed
