"""Validate raw tables against the declared schema. Bad rows are quarantined with their reasons,
never silently dropped: every input row ends up either in the clean table or in quarantine.

    report = validate_raw(raw_dir, clean_dir, quarantine_dir, end)

Tables a dataset lacks (an imported log has no events or reviews) are skipped, and clean/ and
quarantine/ are emptied first so no table of another data version lingers there.

The checks run in DuckDB: per table one query, generated from `custintel.data.schema`, reads the
raw parquet file as each column's kind and computes every row's reasons; its result is streamed in
file order, batch by batch, into the clean file (no reason) and the quarantine file, so memory
stays bounded at any table size. Duplicate ids and unknown parents are looked up per batch in
sorted id arrays (the clean ids of the parent tables; the duplicated ids, found by one aggregate
unless the ids only increase in file order). Clean columns get their kind's dtype (pandas: Int64,
float64, datetime64[ns, UTC], bool; text as it came); quarantined rows keep their raw values.
"""

from __future__ import annotations

import tempfile
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
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
    reason = ", ".join(f"CASE WHEN {cond} THEN {_text(text)} END" for cond, text in conditions)
    changed = [name for name in by_name if _value_changes(by_name[name], types[name])]
    outputs = [f"t.{value[name]} AS {_ident(name)}" if name in by_name else f"t.{_ident(name)}"
               for name in columns]
    outputs += [f"t.{_ident(name)} AS {_ident('__raw_' + name)}" for name in changed]
    extra = [f"r.{_ident(name)}" for name in columns if name not in by_name or name in changed]
    # No join here: DuckDB keeps the file's row order only without one. Duplicate ids and unknown
    # parents are looked up batch by batch instead (_Lookup), their reasons appended in this order.
    query = (f"SELECT {', '.join(outputs)}, t.{_ROW}, concat_ws('; ', {reason}) AS {_REASON} "
             f"FROM (SELECT {', '.join(typed + extra)} FROM {_source(path)} r) t")
    parents = [_Lookup(column, f"{column}: unknown in {table}", _ids(known_ids[table], ID_COLUMN[table]))
               for column, table in schema.foreign_keys.items() if table in known_ids]

    def split(lookups: list[_Lookup], increasing: str | None = None) -> dict:
        return _split(con, query, schema, file, columns, changed, clean_dir, quarantine_dir, lookups,
                      increasing)

    if not schema.unique:
        return split(parents)
    try:  # ids that only increase in file order repeat none, as in generated data: one pass
        return split(parents, increasing=schema.unique)
    except _NotIncreasing:
        pass
    # else every later row of an id seen before (in file order) is a duplicate
    dups = con.execute(f"SELECT id, min({_ROW}) AS first FROM (SELECT {exprs[schema.unique]} AS id, "
                       f"r.file_row_number AS {_ROW} FROM {_source(path)} r) WHERE id IS NOT NULL "
                       "GROUP BY id HAVING count(*) > 1 ORDER BY id").fetchnumpy()
    duplicate = _Lookup(schema.unique, f"{schema.unique}: duplicate id", dups["id"], dups["first"])
    return split([duplicate, *parents])


class _NotIncreasing(Exception):
    """The table's ids do not only increase in file order."""


def _ids(path: Path, column: str) -> np.ndarray:
    """The sorted ids of a clean parent table."""
    ids = pq.read_table(path, columns=[column]).column(0).to_numpy()
    return ids if (ids[1:] > ids[:-1]).all() else np.sort(ids)


class _Lookup:
    """Flags rows whose `column` is not among the sorted `ids` (an unknown parent), or with `first`
    (the first row of each duplicated id), rows of a duplicated id after its first."""

    def __init__(self, column: str, reason: str, ids: np.ndarray, first: np.ndarray | None = None):
        self.column, self.reason, self.ids, self.first = column, reason, np.asarray(ids, dtype="int64"), first

    def flags(self, batch: pa.RecordBatch) -> np.ndarray:
        column = batch.column(self.column)
        values = pc.fill_null(column, 0).to_numpy()
        at = np.minimum(np.searchsorted(self.ids, values), max(len(self.ids) - 1, 0))
        found = self.ids[at] == values if len(self.ids) else np.zeros(len(values), dtype=bool)
        present = ~pc.is_null(column).to_numpy(zero_copy_only=False)
        if self.first is None:
            return present & ~found
        return present & found & (batch.column(_ROW).to_numpy() > self.first[at])


def _with_lookups(batch: pa.RecordBatch, lookups: list[_Lookup]) -> pa.RecordBatch:
    """The batch with the lookups' reasons appended to those of the rows they flag."""
    flags = [(mask, lookup.reason) for lookup in lookups if (mask := lookup.flags(batch)).any()]
    if not flags:
        return batch
    reasons = batch.column(_REASON).to_numpy(zero_copy_only=False).astype(object)
    hit = np.flatnonzero(np.logical_or.reduce([mask for mask, _ in flags]))
    texts = reasons[hit]
    for mask, reason in flags:
        on = mask[hit]
        texts[on] = np.where(texts[on] == "", reason, texts[on] + "; " + reason)
    reasons[hit] = texts
    index = batch.schema.get_field_index(_REASON)
    return batch.set_column(index, _REASON, pa.array(reasons, type=pa.string()))


def _value_changes(col: Column, raw_type: str) -> bool:
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


def _dictionaries(file: pq.ParquetFile, columns: list[str]) -> dict[str, pa.Array]:
    """The values of the raw file's dictionary (pandas categorical) columns, in the order pandas
    gives its categories (those of the first row group, then new ones as they appear)."""
    names = [n for n in columns if pa.types.is_dictionary(file.schema_arrow.field(n).type)]
    values: dict[str, dict] = {n: {} for n in names}
    for i in range(file.metadata.num_row_groups if names else 0):
        group = file.read_row_group(i, columns=names)
        for name in names:
            for chunk in group.column(name).chunks:
                values[name].update(dict.fromkeys(chunk.dictionary.to_pylist()))
    return {n: pa.array(list(v), type=file.schema_arrow.field(n).type.value_type) for n, v in values.items()}


def _cast(array: pa.Array, to: pa.DataType, dictionary: pa.Array | None) -> pa.Array:
    if array.type == to:
        return array
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if dictionary is not None and pa.types.is_dictionary(to):  # keep the raw dictionary's order
        indices = pc.index_in(array, value_set=dictionary).cast(to.index_type)
        return pa.DictionaryArray.from_arrays(indices, dictionary)
    return array.cast(to)


def _batch(batch: pa.RecordBatch, names: list[str], schema: pa.Schema,
           dictionaries: dict[str, pa.Array]) -> pa.RecordBatch:
    arrays = [_cast(batch.column(n), f.type, dictionaries.get(f.name))
              for n, f in zip(names, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _split(con, query: str, schema: TableSchema, file: pq.ParquetFile, columns: list[str], changed: list[str],
           clean_dir: Path, quarantine_dir: Path, lookups: list[_Lookup], increasing: str | None) -> dict:
    """Stream the checked rows into the clean file (reason '') and the quarantine file (the others);
    with `increasing`, raise _NotIncreasing (and write nothing) unless that column only increases."""
    clean_schema, quarantine_schema = _schemas(schema, file, columns)
    dictionaries = _dictionaries(file, columns)
    quarantine_names = [f"__raw_{n}" if n in changed else n for n in columns] + [_REASON]
    clean_file = clean_dir / f"{schema.name}.parquet"
    quarantine_file = quarantine_dir / f"{schema.name}.parquet"
    # dictionary-encode text only: for ids, amounts and times it is work thrown away
    text = [f.name for f in clean_schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)]
    reasons: Counter[str] = Counter()
    rows = clean = 0
    last = None
    cursor = con.cursor()  # its own connection: a stream given up midway does not block the next query
    writers: dict[str, pq.ParquetWriter] = {}
    pending: deque[Future] = deque()

    def write(kind: str, batch: pa.RecordBatch) -> None:  # in the writer thread, overlapping DuckDB
        if kind == "clean":
            writers["clean"].write_batch(_batch(batch, columns, clean_schema, dictionaries))
        else:
            if kind not in writers:
                writers[kind] = pq.ParquetWriter(quarantine_file, quarantine_schema)
            writers[kind].write_batch(_batch(batch, quarantine_names, quarantine_schema, dictionaries))

    try:
        writers["clean"] = pq.ParquetWriter(clean_file, clean_schema, use_dictionary=text)
        relation = cursor.sql(query)
        reader = relation.to_arrow_reader(BATCH_ROWS) if hasattr(relation, "to_arrow_reader") \
            else relation.fetch_arrow_reader(BATCH_ROWS)
        with ThreadPoolExecutor(1) as pool:
            for batch in reader:
                if increasing is not None:
                    ids = batch.column(increasing).drop_null().to_numpy()
                    if len(ids):
                        if (last is not None and ids[0] <= last) or not (ids[1:] > ids[:-1]).all():
                            raise _NotIncreasing
                        last = ids[-1]
                batch = _with_lookups(batch, lookups)
                rows += batch.num_rows
                bad = pc.not_equal(batch.column(_REASON), "")
                n_bad = pc.sum(bad).as_py() or 0
                good = batch if n_bad == 0 else batch.filter(pc.invert(bad))
                clean += good.num_rows
                if good.num_rows:
                    pending.append(pool.submit(write, "clean", good))
                if n_bad:
                    bad_rows = batch.filter(bad)
                    reasons.update(bad_rows.column(_REASON).to_pylist())
                    pending.append(pool.submit(write, "quarantine", bad_rows))
                while len(pending) > 2:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
    except _NotIncreasing:
        for future in pending:
            future.cancel()
        for writer in writers.values():
            writer.close()
        writers.clear()
        quarantine_file.unlink(missing_ok=True)
        raise
    finally:
        for writer in writers.values():
            writer.close()
        cursor.close()
    # ranked as pandas' value_counts ranks them (reasons in order of first appearance)
    top = pd.Series(reasons, dtype="int64").sort_values(ascending=False).head(5).to_dict()
    return {"rows": rows, "clean": clean, "quarantined": rows - clean, "top_reasons": top}
