"""Ingest: make sure the configured dataset is versioned in DVC, `dvc pull` it, validate it.

With `versioning.revision` set, that catalogued version is checked out. Otherwise the version
the current generator settings produced before is reused, and the generator runs only when
there is none.
"""

from __future__ import annotations

import json
import logging
import shutil

from custintel.config import Settings
from custintel.data import catalogue, versioning
from custintel.errors import UserError
from custintel.paths import DataPaths

log = logging.getLogger(__name__)
GENERATOR_VERSION = 7  # bump when the generator's output changes for the same settings
VALIDATION_VERSION = 1  # bump when the schema or the checks change


def _origin(settings: Settings) -> dict:
    """What produces the generated data; equal origins give identical data."""
    data = settings.data.model_dump(mode="json", exclude={"max_bad_fraction"})
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
    version = catalogue.record(paths.dvc_repo, _origin(settings), counts)
    log.info("versioned raw data %s: %s", version, counts)
    return {"data_version": version, "counts": counts}


def _configure(settings: Settings, paths: DataPaths) -> None:
    versioning.configure_remote(paths.dvc_repo, settings.versioning.remote_url or str(paths.dvc_remote))


def ingest(settings: Settings) -> dict:
    """Check out (or generate) the data version these settings ask for, pull it and validate it."""
    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    root = paths.dvc_repo
    pinned = settings.versioning.revision
    wanted = catalogue.resolve(root, pinned) if pinned else catalogue.find_by_origin(root, _origin(settings))
    generated = wanted is None
    if generated:
        generate_and_version(settings)
        version = versioning.pull(root)
    else:
        log.info("using catalogued raw data %s%s", wanted, " (pinned)" if pinned else "")
        version = catalogue.checkout(root, wanted)
    validation = validate(settings, version)
    result = {"data_version": version, "generated": generated, "raw_dir": str(paths.raw),
              "clean_dir": str(paths.clean), "quarantine_dir": str(paths.quarantine),
              "quarantined_rows": sum(t["quarantined"] for t in validation["tables"].values())}
    (paths.root / "ingest.json").write_text(json.dumps(result, indent=2))
    return result


def validate(settings: Settings, data_version: str) -> dict:
    """Schema-check the pulled raw tables into clean/ and quarantine/ (skipped when already done
    for this data version)."""
    from custintel.config import utc_datetime
    from custintel.data.validation import validate_raw

    paths = DataPaths(settings.data_dir)
    report_file = paths.clean / "validation.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        if report.get("data_version") == data_version and report.get("code") == VALIDATION_VERSION:
            return report
    tables = validate_raw(paths.raw, paths.clean, paths.quarantine, utc_datetime(settings.data.end_date))
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
    report_file.write_text(json.dumps(report, indent=2))
    return report
