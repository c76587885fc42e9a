"""Import a real transaction log (customer id, timestamp, amount; optionally quantity, product,
category) into the raw layout the pipeline versions, validates and learns from.

    custintel import package:lifetimes/datasets/CDNOW_master.txt --timestamp date \\
        --amount dollar_value --quantity number_of_cds --timestamp-format %Y%m%d

The raw version holds the log's mapped columns under canonical names with their values as
read (text stays text), plus `source.json` describing how to read them; validation quarantines
rows it cannot read, and `derive_tables` turns the clean rows into customers and orders.
Sessions and reviews do not exist for such a log, so their features stay absent.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pandas as pd

from custintel.config import SourceSection
from custintel.errors import UserError

TRANSACTIONS = "transactions"
CUSTOMER_IDS = "customer_ids"  # external id -> integer id, written only when the log's ids are not integers
MANIFEST = "source.json"
FIELDS = ("customer_id", "timestamp", "amount", "quantity", "product", "category")
_PACKAGE = "package:"


def resolve_path(spec: str) -> Path:
    """A file path, or `package:<package>/<file>` inside an installed Python package."""
    if not spec.startswith(_PACKAGE):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"source.path {spec!r} is not a file (resolved to {path.resolve()}); "
                            "fix source.path in params.yaml or the path given to `custintel import`.")
        return path
    package, _, inner = spec[len(_PACKAGE):].partition("/")
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise UserError(f"source.path {spec!r}: Python package {package!r} is not installed; "
                        f"`pip install {package}` or point source.path at a file.") from None
    path = Path(str(root.joinpath(inner)))
    if not inner or not path.is_file():
        raise UserError(f"source.path {spec!r}: package {package!r} has no file {inner!r} "
                        f"(looked in {root}).")
    return path


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "whitespace")


def _mapping(source: SourceSection) -> dict[str, str]:
    """canonical field -> the log's column, for the fields the log has."""
    return {f: col for f in FIELDS if (col := getattr(source.columns, f)) is not None}


def read_log(source: SourceSection) -> pd.DataFrame:
    """The log's mapped columns renamed to the canonical fields; every field present (null where
    the log lacks it). Text formats are read as text so ids like 00042 and odd values survive."""
    path = resolve_path(source.path or "")
    fmt = detect_format(path, source.format)
    mapping = _mapping(source)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="," if fmt == "csv" else r"\s+", dtype=str, keep_default_na=False,
                                na_values=[""])
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise UserError(f"Cannot read {path} as {fmt}: {exc}. "
                        "Set source.format (csv, whitespace, parquet).") from None
    missing = {f: col for f, col in mapping.items() if col not in frame.columns}
    if missing:
        fixes = ", ".join(f"source.columns.{f} ({col!r})" for f, col in missing.items())
        raise UserError(f"{path} has no column for {fixes}; its columns are {list(frame.columns)}. "
                        "Map each field to one of them in params.yaml (or with `custintel import` options).")
    out = pd.DataFrame({f: frame[col] for f, col in mapping.items()})
    for f in FIELDS:
        if f not in out.columns:
            out[f] = pd.Series(pd.NA, index=out.index, dtype=object)
    return out[list(FIELDS)]


def _integer_ids(ids: pd.Series) -> tuple[pd.Series, pd.DataFrame | None]:
    """Keep integer-like ids; otherwise number the distinct ids 1..n (sorted) and return the map."""
    numeric = pd.to_numeric(ids, errors="coerce")
    if numeric.notna().sum() == ids.notna().sum():
        return ids, None
    codes, uniques = pd.factorize(ids, sort=True)
    mapped = pd.Series(codes + 1, index=ids.index, dtype="Int64").where(codes >= 0)
    id_map = pd.DataFrame({"customer_id": range(1, len(uniques) + 1), "external_id": uniques.astype(str)})
    return mapped, id_map


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def origin(source: SourceSection) -> dict:
    """What an imported version is made of: the file's content hash and how it was read."""
    path = resolve_path(source.path or "")
    return {"import": {"path": source.path, "sha256": file_digest(path),
                       "format": detect_format(path, source.format), "columns": _mapping(source),
                       "timestamp_format": source.timestamp_format}}


def write_import(source: SourceSection, raw_dir: Path) -> dict[str, int]:
    """Write the log as raw/transactions.parquet (+ the id map and the manifest); returns row counts."""
    frame = read_log(source)
    frame["customer_id"], id_map = _integer_ids(frame["customer_id"])
    raw_dir.mkdir(parents=True, exist_ok=True)
    text = {c: frame[c].astype("string") for c in frame.columns if frame[c].dtype == object}
    frame.assign(**text).to_parquet(raw_dir / f"{TRANSACTIONS}.parquet", index=False)
    counts = {TRANSACTIONS: len(frame)}
    if id_map is not None:
        id_map.to_parquet(raw_dir / f"{CUSTOMER_IDS}.parquet", index=False)
        counts[CUSTOMER_IDS] = len(id_map)
    manifest = {**origin(source)["import"], "rows": len(frame)}
    (raw_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return counts


def timestamp_formats(raw_dir: Path) -> dict[str, str]:
    """{'transactions.timestamp': format} from the version's manifest, for validation."""
    path = raw_dir / MANIFEST
    fmt = json.loads(path.read_text()).get("timestamp_format") if path.is_file() else None
    return {f"{TRANSACTIONS}.timestamp": fmt} if fmt else {}


def derive_tables(transactions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Customers and orders from clean transactions: rows of one customer at one timestamp form one
    order (amounts and quantities summed); a customer signs up at their first order."""
    grouped = transactions.groupby(["customer_id", "timestamp"], sort=False)
    orders = grouped.agg(amount=("amount", "sum"), category=("category", "first")).reset_index()
    orders["n_items"] = grouped["quantity"].sum(min_count=1).astype("Int64").to_numpy()
    orders = orders.rename(columns={"timestamp": "order_ts"}).sort_values(["order_ts", "customer_id"],
                                                                          ignore_index=True)
    orders.insert(0, "order_id", pd.array(range(1, len(orders) + 1), dtype="Int64"))
    orders["discount"] = pd.Series(float("nan"), index=orders.index)
    customers = orders.groupby("customer_id", sort=True)["order_ts"].min().rename("signup_ts").reset_index()
    for column in ("country", "channel", "age_band"):
        customers[column] = pd.Series(pd.NA, index=customers.index, dtype="string")
    columns = ["order_id", "customer_id", "order_ts", "amount", "discount", "category", "n_items"]
    return {"customers": customers, "orders": orders[columns]}
