"""The Evidently HTML report of a monitoring run, and the index of past runs.

The HTML holds Evidently's per-column drift tests (same methods and thresholds as the decision) for
the most drifted features, the model's predictions and, once matured, the labels, on
drift.report_sample rows per side: rendering costs about 0.3 s per column, so a run over 50
features renders the ones that matter. Every feature's result is in drift.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from custintel.drift import ColumnDrift, sample_rows

INDEX_FILE = "index.jsonl"


def render_html(reference: pd.DataFrame, current: pd.DataFrame, tests: dict[str, ColumnDrift], path: Path,
                rows: int, seed: int) -> Path:
    """Evidently ValueDrift per column of `tests` (its method and threshold) -> `path`."""
    from evidently import Report
    from evidently.metrics import ValueDrift

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
