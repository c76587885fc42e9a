"""Validate raw tables against the declared schema. Bad rows are quarantined with their reasons,
never silently dropped: every input row ends up either in the clean table or in quarantine.

    report = validate_raw(raw_dir, clean_dir, quarantine_dir, end)

Tables a dataset lacks (an imported log has no events or reviews) are skipped, and clean/ and
quarantine/ are emptied first so no table of another data version lingers there.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.data.schema import ID_COLUMN, REQUIRED, SCHEMAS, Column, TableSchema
from custintel.errors import UserError

_BOOLS = {True: True, False: False, "true": True, "false": False, "True": True, "False": False}


def _read_bool(value):
    """True or False (also 1 / 0 and "true" / "false"), else None."""
    try:
        return _BOOLS.get(value)
    except TypeError:  # unhashable
        return None


def _coerce_column(series: pd.Series, col: Column, fmt: str | None = None) -> pd.Series:
    """The column as its kind (timestamps by `fmt` when given); values that cannot be read become null."""
    if col.kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series
        return series.map(_read_bool).astype("boolean")
    if col.kind in ("int", "float"):
        num = pd.to_numeric(series, errors="coerce")
        if col.kind == "float":
            return num.astype("float64")
        return num.where(num == np.floor(num)).astype("Int64")  # 1.5 is not an id
    if col.kind == "timestamp":
        if fmt is not None:
            return pd.to_datetime(series.astype("string"), format=fmt, utc=True, errors="coerce")
        return pd.to_datetime(series, utc=True, errors="coerce")
    return series


def _coerce(frame: pd.DataFrame, schema: TableSchema, formats: dict[str, str] | None = None) -> pd.DataFrame:
    formats = formats or {}
    return frame.assign(**{
        col.name: _coerce_column(frame[col.name], col, formats.get(f"{schema.name}.{col.name}"))
        for col in schema.columns})


def table_problems(frame: pd.DataFrame, schema: TableSchema, end: datetime,
                   known_ids: dict[str, pd.Series], formats: dict[str, str] | None = None) -> pd.Series:
    """Per row, a '; '-joined list of what is wrong with it ('' for a good row)."""
    flags: list[tuple[np.ndarray, str]] = []

    def flag(mask: pd.Series, reason: str) -> None:
        mask = mask.fillna(False).to_numpy(dtype=bool)
        if mask.any():
            flags.append((mask, reason))

    coerced = _coerce(frame, schema, formats)
    for col in schema.columns:
        values = coerced[col.name]
        bad_kind = frame[col.name].notna() & values.isna()
        fmt = (formats or {}).get(f"{schema.name}.{col.name}")
        flag(bad_kind, f"{col.name}: not a valid {col.kind}" + (f" in format {fmt}" if fmt else ""))
        if not col.nullable:
            flag(values.isna() & ~bad_kind, f"{col.name}: missing")
        if col.min is not None:
            flag(values < col.min, f"{col.name}: below {col.min}")
        if col.max is not None:
            flag(values > col.max, f"{col.name}: above {col.max}")
        if col.allowed is not None:
            flag(values.notna() & ~values.isin(col.allowed), f"{col.name}: not one of {list(col.allowed)}")
    for column, flag_column in schema.set_when.items():
        is_set, wanted = coerced[column].notna(), coerced[flag_column].fillna(False).astype(bool)
        flag(wanted & ~is_set, f"{column}: missing though {flag_column}")
        flag(is_set & ~wanted, f"{column}: set though not {flag_column}")
    if schema.timestamp:
        flag(coerced[schema.timestamp] > pd.Timestamp(end), f"{schema.timestamp}: after the end of history")
    if schema.unique:
        flag(coerced[schema.unique].duplicated(keep="first") & coerced[schema.unique].notna(),
             f"{schema.unique}: duplicate id")
    for column, table in schema.foreign_keys.items():
        if table in known_ids:
            flag(coerced[column].notna() & ~coerced[column].isin(known_ids[table]),
                 f"{column}: unknown in {table}")
    # Strings are built for the bad rows only: most rows are good, and object columns are slow.
    reasons = np.full(len(frame), "", dtype=object)
    if flags:
        bad = np.flatnonzero(np.logical_or.reduce([mask for mask, _ in flags]))
        texts = np.full(len(bad), "", dtype=object)
        for mask, reason in flags:
            hit = mask[bad]
            texts[hit] = np.where(texts[hit] == "", reason, texts[hit] + "; " + reason)
        reasons[bad] = texts
    return pd.Series(reasons, index=frame.index, dtype=object)


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
    known_ids: dict[str, pd.Series] = {}
    report: dict[str, dict] = {}
    for name in tables:
        schema = SCHEMAS[name]
        path = raw_dir / f"{name}.parquet"
        frame = pd.read_parquet(path)
        missing = [c for c in schema.column_names if c not in frame.columns]
        if missing:
            raise UserError(f"Raw table {name!r} lacks column(s) {missing}; it has {list(frame.columns)}. "
                            "Fix the export or the column mapping.")
        reasons = table_problems(frame, schema, end, known_ids, formats)
        bad = reasons != ""
        clean = _coerce(frame[~bad], schema, formats).reset_index(drop=True)
        clean.to_parquet(clean_dir / f"{name}.parquet", index=False)
        quarantined = frame[bad].assign(quarantine_reason=reasons[bad]).reset_index(drop=True)
        quarantine_file = quarantine_dir / f"{name}.parquet"
        if len(quarantined):
            quarantined.astype({c: str for c in quarantined.columns if quarantined[c].dtype == object}
                               ).to_parquet(quarantine_file, index=False)
        if name in ID_COLUMN:
            known_ids[name] = clean[ID_COLUMN[name]]
        report[name] = {"rows": len(frame), "clean": len(clean), "quarantined": int(bad.sum()),
                        "top_reasons": reasons[bad].value_counts().head(5).to_dict()}
    return report
