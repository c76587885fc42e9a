"""Ingest: make sure the configured dataset is versioned in DVC, then `dvc pull` it.

The generator runs only when no raw data is versioned yet or the generator settings changed
(fingerprint); otherwise the versioned data is reused.
"""

from __future__ import annotations

import json
import logging
import shutil

from custintel.config import Settings
from custintel.data import versioning
from custintel.errors import UserError
from custintel.paths import DataPaths

log = logging.getLogger(__name__)
GENERATOR_VERSION = 6  # bump when the generator's output changes for the same settings
VALIDATION_VERSION = 1  # bump when the schema or the checks change


def _fingerprint(settings: Settings) -> dict:
    return {"data": settings.data.model_dump(mode="json"), "seed": settings.base.seed,
            "generator_version": GENERATOR_VERSION}


def generate_and_version(settings: Settings) -> dict:
    """Generate the raw tables, `dvc add` and `dvc push` them. Returns counts and the data version."""
    from custintel.data.generator import generate_chunks, write_tables

    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    log.info("generating %d customers", settings.data.n_customers)
    shutil.rmtree(paths.raw, ignore_errors=True)
    counts = write_tables(generate_chunks(settings.data, settings.base.seed), paths.raw)
    version = versioning.track_and_push(paths.dvc_repo)
    versioning.write_fingerprint(paths.dvc_repo, _fingerprint(settings))
    log.info("versioned raw data %s: %s", version, counts)
    return {"data_version": version, "counts": counts}


def _configure(settings: Settings, paths: DataPaths) -> None:
    versioning.configure_remote(paths.dvc_repo, settings.versioning.remote_url or str(paths.dvc_remote))


def ingest(settings: Settings) -> dict:
    """Ensure versioned raw data for these settings exists, then pull it; returns its data version."""
    paths = DataPaths(settings.data_dir)
    _configure(settings, paths)
    current = versioning.data_version(paths.dvc_repo)
    generated = current is None or versioning.read_fingerprint(paths.dvc_repo) != _fingerprint(settings)
    if generated:
        generate_and_version(settings)
    else:
        log.info("raw data %s is up to date; reusing it", current)
    version = versioning.pull(paths.dvc_repo)
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
