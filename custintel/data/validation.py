"""Validate raw tables against the declared schema. Bad rows are quarantined with their reasons,
never silently dropped: every input row ends up either in the clean table or in quarantine.

    report = validate_raw(raw_dir, clean_dir, quarantine_dir, end)

Tables a dataset lacks (an imported log has no events or reviews) are skipped, and clean/ and
quarantine/ are emptied first so no table of another data version lingers there.

The checks run in DuckDB, one streaming query per table generated from `custintel.data.schema`:
the raw parquet file is read in batches, each row's reasons are computed in SQL, and the batches
are split into the clean and the quarantine file as they arrive, so memory stays bounded at any
table size (duplicate ids are found by a spilling aggregate, foreign keys against the clean ids
the parent table wrote). Clean columns have the kinds' dtypes (pandas: Int64, float64,
datetime64[ns, UTC], bool; text as it came); quarantined rows keep their raw values.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from custintel.data.schema import ID_COLUMN, REQUIRED, SCHEMAS, Column, TableSchema
from custintel.errors import UserError

THREADS = 2  # DuckDB worker threads
MEMORY_LIMIT = "1GB"  # DuckDB's buffer pool; beyond it aggregates spill to a temporary directory
BATCH_ROWS = 1 << 20  # rows per streamed batch (and per row group of the written files)
REASON = "quarantine_reason"
_ROW, _REASON = "__row", "__reason"

_CLEAN_TYPES = {"int": pa.int64(), "float": pa.float64(), "timestamp": pa.timestamp("ns", tz="UTC"),
                "bool": pa.bool_()}
_CLEAN_DTYPES = {"int": "Int64", "float": "float64", "timestamp": "datetime64[ns, UTC]", "bool": "bool"}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE"}
_TEXT_BOOLS = {"true": True, "false": False, "True": True, "False": False}


def present_tables(raw_dir: Path) -> list[str]:
    """The declared tables `raw_dir` holds, in validation order; it must hold one REQUIRED set."""
    present = [name for name in SCHEMAS if (raw_dir / f"{name}.parquet").is_file()]
    if not any(set(needed) <= set(present) for needed in REQUIRED):
        wanted = " or ".join("+".join(needed) for needed in REQUIRED)
        raise UserError(f"{raw_dir} holds tables {present or 'none'}, but needs {wanted}. "
                        "Re-run `custintel ingest` (or `custintel import` for a transaction log).")
    return present


def validate_raw(raw_dir: Path, clean_dir: Path, quarantine_dir: Path, end: datetime,
                 formats: dict[str, str] | None = None) -> dict:
    """Validate every table of `raw_dir` (parents before children so foreign keys see clean ids).
    `formats` maps 'table.column' to a strptime format for text timestamps."""
    tables = present_tables(raw_dir)
    for directory in (clean_dir, quarantine_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.parquet"):
            stale.unlink()
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    known_ids: dict[str, Path] = {}  # parent table -> its clean file
    report: dict[str, dict] = {}
    with _connect(clean_dir.parent) as con:
        for name in tables:
            report[name] = _validate_table(con, SCHEMAS[name], raw_dir / f"{name}.parquet", clean_dir,
                                           quarantine_dir, end, formats or {}, known_ids)
            if name in ID_COLUMN:
                known_ids[name] = clean_dir / f"{name}.parquet"
    return report


@contextmanager
def _connect(scratch_parent: Path) -> Iterator:
    import duckdb

    with tempfile.TemporaryDirectory(prefix=".validation-", dir=scratch_parent) as scratch:
        con = duckdb.connect(config={"threads": THREADS, "memory_limit": MEMORY_LIMIT,
                                     "temp_directory": scratch, "preserve_insertion_order": True})
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            yield con
        finally:
            con.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _source(path: Path) -> str:
    return f"read_parquet({_text(path.as_posix())}, file_row_number = true)"


def _raw_columns(file: pq.ParquetFile) -> list[str]:
    """The raw table's columns as pandas reads them (a stored pandas index is not one)."""
    meta = file.schema_arrow.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    return [n for n in file.schema_arrow.names if n not in index]


def _guess_format(con, path: Path, column: str) -> str | None:
    """pandas' reading of text timestamps without a format: the format of the first value, if any."""
    from pandas.tseries.api import guess_datetime_format

    first = con.execute(f"SELECT {_ident(column)} FROM {_source(path)} WHERE {_ident(column)} IS NOT NULL "
                        "ORDER BY file_row_number LIMIT 1").fetchall()
    return guess_datetime_format(str(first[0][0])) if first else None


def _strptime(raw: str, fmt: str) -> str:
    text = f"CAST({raw} AS VARCHAR)"
    if "%z" in fmt:  # Python's %z also reads a 'Z' suffix as UTC; DuckDB's does not
        text = f"regexp_replace({text}, 'Z$', '+00:00')"
    return f"CAST(try_strptime({text}, {_text(fmt)}) AS TIMESTAMPTZ)"


def _value(col: Column, raw: str, raw_type: str, fmt: str | None, guess) -> str:
    """SQL for the column read as its kind; NULL where the raw value cannot be read as one."""
    if col.kind == "int":
        if raw_type in _INTEGERS:
            return f"TRY_CAST({raw} AS BIGINT)"
        if raw_type == "BOOLEAN":
            return f"CAST({raw} AS BIGINT)"
        number = f"TRY_CAST({raw} AS DOUBLE)"  # 1.5 is not an id; '7' and 7.0 are
        exact = f"TRY_CAST({raw} AS BIGINT)" if raw_type == "VARCHAR" else f"TRY_CAST({number} AS BIGINT)"
        return (f"CASE WHEN {number} = floor({number}) AND NOT isnan({number}) "
                f"THEN coalesce({exact}, TRY_CAST({number} AS BIGINT)) END")
    if col.kind == "float":
        number = raw if raw_type == "DOUBLE" else f"TRY_CAST({raw} AS DOUBLE)"
        return f"CASE WHEN NOT isnan({number}) THEN {number} END"
    if col.kind == "timestamp":
        if raw_type.startswith(("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")):
            return raw
        if fmt is None and raw_type == "VARCHAR":
            fmt = guess()
        if fmt is not None:
            return _strptime(raw, fmt)
        return f"TRY_CAST({raw} AS TIMESTAMPTZ)"
    if col.kind == "bool":
        if raw_type == "BOOLEAN":
            return raw
        if raw_type == "VARCHAR":
            cases = " ".join(f"WHEN {_text(k)} THEN {str(v).upper()}" for k, v in _TEXT_BOOLS.items())
            return f"CASE {raw} {cases} END"
        if raw_type in _INTEGERS or raw_type in _FLOATS or raw_type.startswith("DECIMAL"):
            return f"CASE WHEN {raw} = 1 THEN TRUE WHEN {raw} = 0 THEN FALSE END"
        return "CAST(NULL AS BOOLEAN)"
    return raw


def _present(raw: str, raw_type: str) -> str:
    """SQL: the raw value is there (pandas' notna: NaN counts as missing)."""
    if raw_type in _FLOATS:
        return f"({raw} IS NOT NULL AND NOT isnan({raw}))"
    return f"({raw} IS NOT NULL)"


def _literal(value) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ {_text(value.astimezone(UTC).isoformat())}"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _validate_table(con, schema: TableSchema, path: Path, clean_dir: Path, quarantine_dir: Path,
                    end: datetime, formats: dict[str, str], known_ids: dict[str, Path]) -> dict:
    file = pq.ParquetFile(path)
    columns = _raw_columns(file)
    missing = [c for c in schema.column_names if c not in columns]
    if missing:
        raise UserError(f"Raw table {schema.name!r} lacks column(s) {missing}; it has {columns}. "
                        "Fix the export or the column mapping.")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             f"read_parquet({_text(path.as_posix())}))").fetchall())
    by_name = {c.name: c for c in schema.columns}
    index = {name: i for i, name in enumerate(columns)}
    raw = {name: f"r.{_ident(name)}" for name in columns}
    value = {name: f"v{index[name]}" for name in by_name}  # names in the typed select

    typed = [f"r.file_row_number AS {_ROW}"]
    exprs: dict[str, str] = {}
    conditions: list[tuple[str, str]] = []  # (SQL that is true for a bad row, reason), in report order
    for col in schema.columns:
        fmt = formats.get(f"{schema.name}.{col.name}")
        raw_type = types[col.name]
        exprs[col.name] = expr = _value(col, raw[col.name], raw_type, fmt,
                                        lambda name=col.name: _guess_format(con, path, name))
        v, present = value[col.name], f"p{index[col.name]}"
        typed += [f"{expr} AS {v}", f"{_present(raw[col.name], raw_type)} AS {present}"]
        bad_kind = f"({present} AND {v} IS NULL)"
        in_format = f" in format {fmt}" if fmt else ""
        conditions.append((bad_kind, f"{col.name}: not a valid {col.kind}{in_format}"))
        if not col.nullable:
            conditions.append((f"({v} IS NULL AND NOT {bad_kind})", f"{col.name}: missing"))
        if col.min is not None:
            conditions.append((f"{v} < {_literal(col.min)}", f"{col.name}: below {col.min}"))
        if col.max is not None:
            conditions.append((f"{v} > {_literal(col.max)}", f"{col.name}: above {col.max}"))
        if col.allowed is not None:
            allowed = ", ".join(_text(a) for a in col.allowed)
            inside = f"CAST({v} AS VARCHAR) IN ({allowed})" if raw_type == "VARCHAR" else "FALSE"
            conditions.append((f"({v} IS NOT NULL AND NOT {inside})",
                               f"{col.name}: not one of {list(col.allowed)}"))
    for column, flag_column in schema.set_when.items():
        is_set, wanted = f"({value[column]} IS NOT NULL)", f"coalesce({value[flag_column]}, FALSE)"
        conditions.append((f"({wanted} AND NOT {is_set})", f"{column}: missing though {flag_column}"))
        conditions.append((f"({is_set} AND NOT {wanted})", f"{column}: set though not {flag_column}"))
    if schema.timestamp:
        conditions.append((f"{value[schema.timestamp]} > {_literal(end)}",
                           f"{schema.timestamp}: after the end of history"))
    joins = ""
    if schema.unique and not (types[schema.unique] in _INTEGERS and _increasing(file, schema.unique)):
        # every later row of an id seen before, in file order (ids that only increase have none)
        con.execute(f"CREATE OR REPLACE TEMP TABLE dups AS SELECT id, min({_ROW}) AS first FROM "
                    f"(SELECT {exprs[schema.unique]} AS id, r.file_row_number AS {_ROW} "
                    f"FROM {_source(path)} r) WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1")
        if con.execute("SELECT count(*) FROM dups").fetchall()[0][0]:
            joins = f"LEFT JOIN dups ON dups.id = t.{value[schema.unique]}"
            conditions.append((f"coalesce(t.{_ROW} > dups.first, FALSE)", f"{schema.unique}: duplicate id"))
    for column, table in schema.foreign_keys.items():
        if table in known_ids:
            parent_file = _text(known_ids[table].as_posix())
            parent = f"SELECT {_ident(ID_COLUMN[table])} FROM read_parquet({parent_file})"
            conditions.append((f"({value[column]} IS NOT NULL AND {value[column]} NOT IN ({parent}))",
                               f"{column}: unknown in {table}"))
    reason = ", ".join(f"CASE WHEN {cond} THEN {_text(text)} END" for cond, text in conditions)
    changed = [name for name in by_name if value_changes(by_name[name], types[name])]
    outputs = [f"t.{value[name]} AS {_ident(name)}" if name in by_name else f"t.{_ident(name)}"
               for name in columns]
    outputs += [f"t.{_ident(name)} AS {_ident('__raw_' + name)}" for name in changed]
    extra = [f"r.{_ident(name)}" for name in columns if name not in by_name or name in changed]
    query = (f"SELECT {', '.join(outputs)}, concat_ws('; ', {reason}) AS {_REASON} "
             f"FROM (SELECT {', '.join(typed + extra)} FROM {_source(path)} r) t {joins}")
    return _split(con.sql(query), schema, file, columns, changed, clean_dir, quarantine_dir)


def value_changes(col: Column, raw_type: str) -> bool:
    """Whether reading a raw value as its kind can change it (then quarantine needs the raw one)."""
    same = {"int": raw_type in _INTEGERS, "float": raw_type in _FLOATS, "bool": raw_type == "BOOLEAN",
            "timestamp": raw_type.startswith(("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")), "str": True}
    return not same[col.kind]


def _schemas(schema: TableSchema, file: pq.ParquetFile, columns: list[str]) -> tuple[pa.Schema, pa.Schema]:
    """Arrow schemas (with pandas metadata) of the clean and the quarantine file."""
    raw = file.schema_arrow
    raw_frame = raw.empty_table().to_pandas().reset_index(drop=True)[columns]
    kinds = {c.name: c.kind for c in schema.columns}
    dtypes = {name: _CLEAN_DTYPES[kind] for name, kind in kinds.items() if kind != "str"}
    for name, kind in kinds.items():  # pandas reads a bool column with nulls as objects, made boolean
        plain = pa.types.is_boolean(raw.field(name).type) and _null_count(file, name) == 0
        if kind == "bool" and not plain:
            dtypes[name] = "boolean"
    clean_frame = raw_frame.assign(**{name: pd.Series([], dtype=dtype) for name, dtype in dtypes.items()})
    clean_types = pa.schema([(n, _CLEAN_TYPES.get(kinds.get(n, "str"), raw.field(n).type)) for n in columns])
    quarantine_types = pa.schema([raw.field(n) for n in columns] + [(REASON, pa.string())])
    quarantine_frame = raw_frame.assign(**{REASON: pd.Series([], dtype=object)})
    return (pa.Table.from_pandas(clean_frame, schema=clean_types, preserve_index=False).schema,
            pa.Table.from_pandas(quarantine_frame, schema=quarantine_types, preserve_index=False).schema)


def _increasing(file: pq.ParquetFile, column: str) -> bool:
    """Whether the column's non-null values strictly increase in file order (then none repeats)."""
    last = None
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
        values = batch.column(0).drop_null().to_numpy()
        if len(values) == 0:
            continue
        if (last is not None and values[0] <= last) or not (values[1:] > values[:-1]).all():
            return False
        last = values[-1]
    return True


def _null_count(file: pq.ParquetFile, name: str) -> int | None:
    """Nulls in a column by the file's statistics (None when a row group has none)."""
    total = 0
    for i in range(file.metadata.num_row_groups):
        group = file.metadata.row_group(i)
        stats = next((group.column(j).statistics for j in range(group.num_columns)
                      if group.column(j).path_in_schema == name), None)
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def _cast(array: pa.Array, to: pa.DataType) -> pa.Array:
    if array.type == to:
        return array
    if pa.types.is_dictionary(array.type) and not pa.types.is_dictionary(to):
        array = array.dictionary_decode()
    return array.cast(to)


def _batch(batch: pa.RecordBatch, names: list[str], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [_cast(batch.column(n), f.type) for n, f in zip(names, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _split(relation, schema: TableSchema, file: pq.ParquetFile, columns: list[str], changed: list[str],
           clean_dir: Path, quarantine_dir: Path) -> dict:
    """Stream the checked rows into the clean file (reason '') and the quarantine file (the others)."""
    clean_schema, quarantine_schema = _schemas(schema, file, columns)
    quarantine_names = [f"__raw_{n}" if n in changed else n for n in columns] + [_REASON]
    reasons: Counter[str] = Counter()
    rows = clean = 0
    reader = relation.to_arrow_reader(BATCH_ROWS) if hasattr(relation, "to_arrow_reader") \
        else relation.fetch_arrow_reader(BATCH_ROWS)
    quarantine = None
    with pq.ParquetWriter(clean_dir / f"{schema.name}.parquet", clean_schema) as clean_writer:
        try:
            for batch in reader:
                rows += batch.num_rows
                bad = pc.not_equal(batch.column(_REASON), "")
                n_bad = pc.sum(bad).as_py() or 0
                good = batch if n_bad == 0 else batch.filter(pc.invert(bad))
                clean += good.num_rows
                if good.num_rows:
                    clean_writer.write_batch(_batch(good, columns, clean_schema))
                if n_bad:
                    bad_rows = batch.filter(bad)
                    reasons.update(bad_rows.column(_REASON).to_pylist())
                    if quarantine is None:
                        quarantine = pq.ParquetWriter(quarantine_dir / f"{schema.name}.parquet",
                                                      quarantine_schema)
                    quarantine.write_batch(_batch(bad_rows, quarantine_names, quarantine_schema))
        finally:
            if quarantine is not None:
                quarantine.close()
    # ranked as pandas' value_counts ranks them (reasons in order of first appearance)
    top = pd.Series(reasons, dtype="int64").sort_values(ascending=False).head(5).to_dict()
    return {"rows": rows, "clean": clean, "quarantined": rows - clean, "top_reasons": top}

