"""Validation at scale: seconds, rows/s and peak memory of `validate_raw` (DuckDB, streaming) and of
the previous pandas implementation (kept below, in this script only, as the baseline) on generated
raw data of N customers. Each validation runs in a child process of its own, so its peak RSS
(VmHWM, else getrusage) is its own; runs of the two alternate so both see the same machine load. The raw data
goes to a temporary directory that is deleted afterwards (1M customers: ~2.3 GB of parquet, plus
the clean copy).

    PYTHONPATH=. python benchmarks/validation_scale.py --customers 100000 --runs 3
    PYTHONPATH=. python benchmarks/validation_scale.py --customers 1000000 --runs 1 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import load_settings, utc_datetime
from custintel.data.schema import ID_COLUMN, SCHEMAS, Column, TableSchema
from custintel.data.validation import present_tables, validate_raw
from custintel.errors import UserError

# ---- the pandas implementation validate_raw replaced (commit c700de5), unchanged but for its name ----

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


def legacy_validate_raw(raw_dir: Path, clean_dir: Path, quarantine_dir: Path, end: datetime,
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


# ---- the benchmark ----


def _child(impl: str, raw: Path, out: Path, end: str) -> None:
    """One validation; prints seconds, peak RSS and the report as JSON."""
    validate = validate_raw if impl == "duckdb" else legacy_validate_raw
    start = time.perf_counter()
    report = validate(raw, out / "clean", out / "quarantine", datetime.fromisoformat(end))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "report": report}))


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM on Linux (getrusage's ru_maxrss survives exec, so a child would
    report the parent's peak when that is higher), else getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(impl: str, raw: Path, out: Path, end: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", impl, str(raw), str(out), end],
                          capture_output=True, text=True)
    if done.returncode:
        return {"failed": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--no-baseline", action="store_true", help="skip the old pandas implementation")
    parser.add_argument("--tmp", type=Path, default=None, help="where the data goes (default: system temp)")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "RAW", "OUT", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, raw, out, end = args.child
        _child(impl, Path(raw), Path(out), end)
        return
    from custintel.data.generator import generate_chunks, write_tables

    cfg = load_settings(args.params).data.model_copy(update={"n_customers": args.customers})
    end = utc_datetime(cfg.end_date).isoformat()
    impls = ["duckdb"] + ([] if args.no_baseline else ["pandas"])
    results: dict[str, list[dict]] = {impl: [] for impl in impls}
    with tempfile.TemporaryDirectory(prefix="validation-scale-", dir=args.tmp) as tmp:
        start = time.perf_counter()
        counts = write_tables(generate_chunks(cfg, seed=0), Path(tmp) / "raw")
        generate_s = time.perf_counter() - start
        rows = sum(counts[name] for name in present_tables(Path(tmp) / "raw"))
        for run in range(args.runs):
            for impl in impls:
                out = Path(tmp) / f"{impl}-{run}"
                results[impl].append(_run(impl, Path(tmp) / "raw", out, end))
                shutil.rmtree(out, ignore_errors=True)
    summary: dict = {"customers": args.customers, "runs": args.runs, "rows": rows,
                     "generate_s": round(generate_s, 1), "counts": counts}
    for impl, runs in results.items():
        ok = [r for r in runs if "failed" not in r]
        if not ok:
            summary[impl] = {"failed": runs[0]["failed"]}
            continue
        seconds = statistics.median(r["seconds"] for r in ok)
        summary[impl] = {"median_s": round(seconds, 2), "rows_per_s": round(rows / seconds),
                         "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ok)),
                         "runs_s": [round(r["seconds"], 2) for r in ok]}
    if all("median_s" in summary.get(impl, {}) for impl in ("duckdb", "pandas")):
        summary["speedup"] = round(summary["pandas"]["median_s"] / summary["duckdb"]["median_s"], 2)
        new, old = summary["duckdb"]["peak_rss_mb"], summary["pandas"]["peak_rss_mb"]
        summary["memory_ratio"] = round(new / old, 2)
        summary["same_reports"] = all(a.get("report") == b.get("report")
                                      for a, b in zip(results["duckdb"], results["pandas"], strict=True))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
