"""Ingest: make sure the configured dataset is versioned in DVC, `dvc pull` it, validate it.

With `versioning.revision` set, that catalogued version is checked out. Otherwise the version
the current source settings produced before is reused (the generator's settings, or for an
imported log its file's content hash and column mapping), and the generator or the importer
runs only when there is none.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from custintel.config import Settings
from custintel.data import catalogue, versioning
from custintel.errors import UserError
from custintel.paths import DataPaths

log = logging.getLogger(__name__)
GENERATOR_VERSION = 7  # bump when the generator's output changes for the same settings
VALIDATION_VERSION = 2  # bump when the schema or the checks change
IMPORTER_VERSION = 1  # bump when the importer's output changes for the same file and mapping
MAX_SILENT_DAYS = 31  # an imported log must have transactions this close to data.end_date


def _origin(settings: Settings) -> dict:
    """What produces the raw data; equal origins give identical data."""
    if settings.source.kind == "file":
        from custintel.data.importer import origin

        return {**origin(settings.source), "importer_version": IMPORTER_VERSION}
    data = settings.data.model_dump(mode="json", exclude={"max_bad_fraction"}
                                    | ({"simulate_until"} if settings.data.simulate_until is None else set()))
    return {"generator": data, "seed": settings.base.seed, "generator_version": GENERATOR_VERSION}


def generate_and_version(settings: Settings) -> dict:
    """Generate the raw tables, `dvc add` and `dvc push` them. Returns counts and the data version."""
    from custintel.data.generator import generate_chunks, write_tables

    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    log.info("generating %d customers", settings.data.n_customers)
    shutil.rmtree(paths.raw, ignore_errors=True)
    counts = write_tables(generate_chunks(settings.data, settings.base.seed), paths.raw)
    versioning.track_and_push(paths.dvc_repo)
    data = settings.data
    name = f"generated-{data.scenario.replace('_', '-')}-n{data.n_customers}-seed{settings.base.seed}"
    version = catalogue.record(paths.dvc_repo, _origin(settings), counts, name)
    log.info("versioned raw data %s: %s", version, counts)
    return {"data_version": version, "counts": counts}


def import_and_version(settings: Settings) -> dict:
    """Import the transaction log of `source`, `dvc add` and `dvc push` it. Returns counts and version."""
    from custintel.data.importer import write_import

    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    log.info("importing %s", settings.source.path)
    shutil.rmtree(paths.raw, ignore_errors=True)
    counts = write_import(settings.source, paths.raw)
    versioning.track_and_push(paths.dvc_repo)
    origin = _origin(settings)
    stem = Path(str(settings.source.path).rpartition("/")[2]).stem
    name = f"import-{stem}-{origin['import']['sha256'][:8]}"
    version = catalogue.record(paths.dvc_repo, origin, counts, re.sub(r"[^A-Za-z0-9._-]", "_", name))
    log.info("versioned imported data %s: %s", version, counts)
    return {"data_version": version, "counts": counts}


def _configure(settings: Settings, paths: DataPaths) -> None:
    catalogue.migrate(paths.dvc_repo)
    versioning.configure_remote(paths.dvc_repo, settings.versioning.remote_url or str(paths.dvc_remote))


def ingest(settings: Settings) -> dict:
    """Check out (or generate) the data version these settings ask for, pull it and validate it."""
    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    root = paths.dvc_repo
    pinned = settings.versioning.revision
    wanted = catalogue.resolve(root, pinned) if pinned else catalogue.find_by_origin(root, _origin(settings))
    created = wanted is None
    if created:
        (import_and_version if settings.source.kind == "file" else generate_and_version)(settings)
        version = versioning.pull(root)
    else:
        log.info("using catalogued raw data %s%s", wanted, " (pinned)" if pinned else "")
        version = catalogue.checkout(root, wanted)
    validation = validate(settings, version)
    result = {"data_version": version, "created": created, "raw_dir": str(paths.raw),
              "clean_dir": str(paths.clean), "quarantine_dir": str(paths.quarantine),
              "quarantined_rows": sum(t["quarantined"] for t in validation["tables"].values())}
    (paths.root / "ingest.json").write_text(json.dumps(result, indent=2))
    return result


def validate(settings: Settings, data_version: str) -> dict:
    """Schema-check the pulled raw tables into clean/ and quarantine/ (skipped when already done
    for this data version)."""
    from custintel.config import utc_datetime
    from custintel.data.importer import timestamp_formats
    from custintel.data.validation import validate_raw

    paths = DataPaths(settings.data_dir)
    report_file = paths.clean / "validation.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if report.get("data_version") == data_version and report.get("code") == VALIDATION_VERSION:
            return report
    tables = validate_raw(paths.raw, paths.clean, paths.quarantine, utc_datetime(settings.data.end_date),
                          timestamp_formats(paths.raw))
    for name, info in tables.items():
        if info["quarantined"]:
            log.warning("quarantined %d of %d %s rows (%s); see %s", info["quarantined"], info["rows"], name,
                        info["top_reasons"], paths.quarantine / f"{name}.parquet")
    report = {"data_version": data_version, "code": VALIDATION_VERSION, "tables": tables}
    too_bad = {name: info["quarantined"] / max(info["rows"], 1) for name, info in tables.items()
               if info["quarantined"] > settings.data.max_bad_fraction * info["rows"]}
    if too_bad:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in too_bad.items())
        raise UserError(f"Validation quarantined too many rows ({shares}; data.max_bad_fraction is "
                        f"{settings.data.max_bad_fraction:.1%}). Inspect {paths.quarantine} and fix the "
                        "source, or raise data.max_bad_fraction in params.yaml.")
    if "transactions" in tables:
        report["derived"] = _derive_from_transactions(settings, paths)
    report_file.write_text(json.dumps(report, indent=2))
    return report


def _derive_from_transactions(settings: Settings, paths: DataPaths) -> dict[str, int]:
    """customers + orders in clean/ from the clean rows of an imported log; checks the log reaches
    the configured end of history (else every recent customer would look churned)."""
    import pandas as pd

    from custintel.data.importer import TRANSACTIONS, derive_tables

    tables = derive_tables(pd.read_parquet(paths.clean / f"{TRANSACTIONS}.parquet"))
    orders = tables["orders"]
    if orders.empty:
        raise UserError(f"No clean transactions are left to learn from; see {paths.quarantine}.")
    first, last = orders["order_ts"].min(), orders["order_ts"].max()
    end = pd.Timestamp(settings.data.end_date, tz="UTC")
    first_snapshot = pd.Timestamp(settings.features.first_snapshot, tz="UTC")
    if (end - last).days > MAX_SILENT_DAYS or first >= first_snapshot:
        raise UserError(
            f"The imported log runs from {first.date()} to {last.date()}, but params.yaml has data.end_date "
            f"{settings.data.end_date} and features.first_snapshot {settings.features.first_snapshot}. Set "
            f"data.end_date to {last.date()} and features.first_snapshot a few months after {first.date()}.")
    for name, frame in tables.items():
        frame.to_parquet(paths.clean / f"{name}.parquet", index=False)
    return {name: len(frame) for name, frame in tables.items()}
