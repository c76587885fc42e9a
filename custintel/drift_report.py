"""The Evidently HTML report of a monitoring run, and the index of past runs.

The HTML holds Evidently's per-column drift tests (each column's deciding test, with its threshold) for
the most drifted features, the model's predictions and, once matured, the labels, on
drift.report_sample rows per side: rendering costs about 0.3 s per column, so a run over 50
features renders the ones that matter. Every feature's result is in drift.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from custintel.drift import QUANTILE_PSI, ColumnDrift, quantile_psi, sample_rows

INDEX_FILE = "index.jsonl"


def register_quantile_psi(bins: int) -> None:
    """Make custintel.drift's "quantile_psi" (with `bins` bins) the Evidently stat test of that name,
    so the HTML shows the statistic the decision used."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def _quantile_psi(reference: pd.Series, current: pd.Series, feature_type, threshold: float):
        value = quantile_psi(reference.to_numpy(dtype=float), current.to_numpy(dtype=float), bins)
        return value, value >= threshold

    register_stattest(StatTest(name=QUANTILE_PSI, display_name=f"PSI over {bins} reference-quantile bins",
                               allowed_feature_types=[ColumnType.Numerical]), _quantile_psi)


def render_html(reference: pd.DataFrame, current: pd.DataFrame, tests: dict[str, ColumnDrift], path: Path,
                rows: int, seed: int, quantile_bins: int) -> Path:
    """Evidently ValueDrift per column of `tests` (its method and threshold) -> `path`."""
    from evidently import Report
    from evidently.metrics import ValueDrift

    register_quantile_psi(quantile_bins)
    columns = list(tests)
    ref = sample_rows(reference[columns], rows, seed)
    cur = sample_rows(current[columns], rows, seed + 1)
    report = Report([ValueDrift(column=c, method=t.method, threshold=t.threshold) for c, t in tests.items()])
    path.parent.mkdir(parents=True, exist_ok=True)
    report.run(cur, ref).save_html(str(path))
    return path


def append_index(folder: Path, entry: dict) -> None:
    """One JSON line per monitoring run in <folder>/index.jsonl (append-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / INDEX_FILE).open("a") as out:
        out.write(json.dumps(entry, default=str) + "\n")


def list_runs(folder: Path, limit: int | None = None) -> list[dict]:
    """Past monitoring runs, newest first."""
    index = folder / INDEX_FILE
    if not index.is_file():
        return []
    runs = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    runs.reverse()
    return runs[:limit] if limit else runs
