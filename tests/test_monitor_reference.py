"""Which run's reference stands for the champion's population (custintel.steps.monitor._validated_run)."""

import json

import pandas as pd

from custintel.paths import DataPaths
from custintel.steps.monitor import REFERENCE_FILE, REFERENCE_META, _validated_run


def _run(paths: DataPaths, run_id: str, snapshot: str | None, decision: dict | None = None):
    run = paths.run_dir(run_id)
    run.mkdir(parents=True)
    if snapshot is not None:
        pd.DataFrame({"x": [1.0]}).to_parquet(run / REFERENCE_FILE)
        (run / REFERENCE_META).write_text(json.dumps({"snapshot": snapshot}))
    if decision is not None:
        (run / "promotion.json").write_text(json.dumps(decision))
    return run


def test_the_newest_run_that_kept_the_champion_gives_the_reference(tmp_path):
    paths = DataPaths(tmp_path)
    own = _run(paths, "a", "2025-04-06", {"champion_before": None, "promoted": True})
    _run(paths, "b", "2025-04-13", {"champion_before": "m:1", "promoted": False})  # kept m:1
    kept = _run(paths, "c", "2025-04-20", {"champion_before": "m:1", "promoted": False})
    _run(paths, "d", "2025-04-27", {"champion_before": "m:0", "promoted": False})  # another champion's era
    _run(paths, "e", "2025-04-28", {"champion_before": "m:1", "promoted": True})  # replaced it: not m:1's
    _run(paths, "f", None, {"champion_before": "m:1", "promoted": False})  # no reference saved
    _run(paths, "g", "2025-04-29")  # not judged yet
    assert _validated_run(paths, "m:1", own) == kept


def test_without_a_later_validation_or_a_champion_the_models_own_run(tmp_path):
    paths = DataPaths(tmp_path)
    own = _run(paths, "a", "2025-04-06", {"champion_before": None, "promoted": True})
    _run(paths, "b", "2025-03-30", {"champion_before": "m:1", "promoted": False})  # older than its own
    assert _validated_run(paths, "m:1", own) == own
    assert _validated_run(paths, None, own) == own
