"""The `retrain` flow after real failures, in one tiny data directory (run in order):

1. a failure after training (a truncated ground-truth file breaks evaluation, then an unwritable
   ledger breaks promotion) fails loudly with an alert and promotes nothing; the reruns continue the
   same run and Prefect reports the finished steps as Cached: the model is trained once;
2. the same seed and data revision give the same metrics (a fresh Optuna study, forced retrain);
3. a corrupted or partial DVC cache stops the run before training, naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from custintel.config import load_settings
from custintel.data.integrity import cache_object, md5_file
from custintel.paths import DataPaths
from tests.test_end_to_end import ROOT, _receiver
from tests.test_versioning import _rot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# Metrics of two trainings on the same data revision with the same seed, on CPU with
# deterministic=True: equal to the last bit; the tolerance only absorbs JSON float printing.
METRIC_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.conftest import tiny_params

    tmp = tmp_path_factory.mktemp("resume")
    params = tmp / "params.yaml"
    raw = tiny_params(tmp / "data")
    raw["alerts"]["min_interval_s"] = 0  # every distinct failure alerts (rate limits: tests/test_alerts.py)
    params.write_text(yaml.safe_dump(raw))
    settings = load_settings(params)
    with _receiver() as (url, received):
        yield {"params": params, "paths": DataPaths(settings.data_dir), "received": received,
               "env": {settings.alerts.webhook_env: url}}


def _cli(world: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"} | world["env"]
    return subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(world["params"]), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)


def _ok(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])


def _failure_alerts(world: dict) -> list[str]:
    return [a["text"] for a in world["received"] if a["text"].startswith(":x: custintel retrain flow failed")]


def _the_run(paths: DataPaths) -> Path:
    (run_dir,) = [p for p in paths.runs.iterdir() if p.is_dir()]
    return run_dir


def _trained_files(run_dir: Path) -> dict[str, int]:
    """mtime (ns) of what training writes: a retrain would rewrite them."""
    return {name: (run_dir / name).stat().st_mtime_ns
            for name in ("trained.json", "model/model.json", "model/weights.pt", "tuning.json")}


def _trials(paths: DataPaths) -> int:
    import sqlite3

    with sqlite3.connect(paths.optuna_db) as db:
        return db.execute("select count(*) from trials").fetchone()[0]


def test_a_rerun_after_a_failure_resumes_without_training_again(world):
    paths = world["paths"]
    _ok(_cli(world, "ingest"))
    _ok(_cli(world, "features"))
    # two real faults after training: evaluation reads a truncated ground-truth file (training does
    # not read it), and the promotion ledger path is not writable (a directory)
    truth = paths.ground_truth_file.read_bytes()
    paths.ground_truth_file.write_bytes(truth[: len(truth) // 2])
    (paths.registry / "ledger.jsonl").mkdir(parents=True)

    first = _cli(world, "retrain")
    assert first.returncode != 0 and "ArrowInvalid" in first.stderr  # pyarrow: not a parquet file
    run_dir = _the_run(paths)  # started (runs/started.json), not recorded: evaluation failed
    assert list(json.loads((paths.runs / "started.json").read_text()).values()) == [run_dir.name]
    trained = _trained_files(run_dir)
    trials = _trials(paths)
    assert not (run_dir / "metrics.json").exists() and not (paths.runs / "index.json").exists()
    (failure,) = _failure_alerts(world)
    assert "ArrowInvalid" in failure

    _ok(_cli(world, "features", "--force"))  # rewrites the ground truth (features are unchanged)
    second = _cli(world, "retrain")
    assert second.returncode != 0 and "IsADirectoryError" in second.stderr
    assert _the_run(paths) == run_dir and _trained_files(run_dir) == trained and _trials(paths) == trials
    assert (run_dir / "metrics.json").is_file()  # evaluation ran this time; the run is recorded
    assert list(json.loads((paths.runs / "index.json").read_text()).values()) == [run_dir.name]
    # failed loudly, promoted nothing: no champion pointer, no ledger line, one more failure alert
    assert not (paths.registry / "champion.json").exists()
    assert list((paths.registry / "ledger.jsonl").iterdir()) == []
    failures = _failure_alerts(world)
    assert len(failures) == 2 and "IsADirectoryError" in failures[1] and "ledger.jsonl" in failures[1]

    (paths.registry / "ledger.jsonl").rmdir()
    summary = _ok(_cli(world, "retrain"))
    assert summary["run_id"] == run_dir.name and summary["reused_run"]
    assert summary["task_states"] == {"train": "Cached", "evaluate": "Cached"}  # Prefect's state names
    assert _trained_files(run_dir) == trained and _trials(paths) == trials
    assert summary["promotion"]["promoted"] and summary["promotion"]["reason"] == "no champion yet"
    ledger = [json.loads(line) for line in (paths.registry / "ledger.jsonl").read_text().splitlines()]
    assert [(e["event"], e["tag"]) for e in ledger] == [("promoted", summary["promotion"]["challenger"])]
    assert list(json.loads((paths.runs / "index.json").read_text()).values()) == [run_dir.name]
    assert json.loads((paths.runs / "started.json").read_text()) == {}
    texts = [a["text"] for a in world["received"]]
    assert sum(t.startswith(":rocket: custintel promoted") for t in texts) == 1
    assert texts[-1].startswith(":white_check_mark: custintel retrain finished: run " + run_dir.name)

    # an unchanged rerun: the same run, both steps Cached, nothing promoted again
    again = _ok(_cli(world, "retrain"))
    assert again["run_id"] == run_dir.name and again["reused_run"]
    assert again["task_states"] == {"train": "Cached", "evaluate": "Cached"}
    assert not again["promotion"]["promoted"] and _trained_files(run_dir) == trained


def test_the_same_seed_and_data_revision_give_the_same_metrics(world):
    paths = world["paths"]
    first_id = (paths.runs / "LATEST").read_text().strip()
    first = json.loads((paths.run_dir(first_id) / "metrics.json").read_text())
    paths.optuna_db.unlink()  # a fresh study: tuning runs again from the seeded sampler
    summary = _ok(_cli(world, "retrain", "--force"))
    assert summary["run_id"] != first_id and summary["data_version"] == first["data_version"]
    assert summary["task_states"] == {"train": "Completed", "evaluate": "Completed"}
    second = json.loads((paths.run_dir(summary["run_id"]) / "metrics.json").read_text())
    tuning = [json.loads((paths.run_dir(r) / "tuning.json").read_text())
              for r in (first_id, summary["run_id"])]
    assert tuning[0]["best_params"] == tuning[1]["best_params"] and tuning[0]["epochs"] == tuning[1]["epochs"]
    for group in ("model", "oracle"):
        for name, value in first[group].items():
            assert second[group][name] == pytest.approx(value, abs=METRIC_TOLERANCE, rel=0), (group, name)
    for baseline, values in first["baselines"].items():
        assert second["baselines"][baseline] == pytest.approx(values, abs=METRIC_TOLERANCE, rel=0), baseline
    # the identical challenger gains nothing over the champion: rejected
    assert not summary["promotion"]["promoted"] and summary["promotion"]["delta"] == 0


def test_a_corrupted_or_partial_dvc_cache_stops_the_run_before_training(world):
    paths = world["paths"]
    runs_before = sorted(p.name for p in paths.runs.iterdir())
    ledger_before = (paths.registry / "ledger.jsonl").read_text()
    champion_before = (paths.registry / "champion.json").read_text()
    repo = paths.dvc_repo
    customers = cache_object(repo, md5_file(paths.raw / "customers.parquet"))
    orders = cache_object(repo, md5_file(paths.raw / "orders.parquet"))
    _rot(customers, bytes(b ^ 0xFF if i == 100 else b for i, b in enumerate(customers.read_bytes())))
    remote_orders = paths.dvc_remote / orders.relative_to(repo / ".dvc" / "cache")
    for obj in (orders, remote_orders):  # a partial push: truncated in the cache and the remote
        _rot(obj, obj.read_bytes()[:200])

    failed = _cli(world, "retrain")
    assert failed.returncode == 2
    error = failed.stderr[failed.stderr.index("error: "):]
    assert f"{paths.raw / 'customers.parquet'} does not match data version" in error
    assert f"rm -f {customers}" in error and "custintel ingest" in error and "dvc pull --force" in error
    assert "customers.parquet does not match" in _failure_alerts(world)[-1]
    # stopped before training: no new run, the ledger and the champion untouched
    assert sorted(p.name for p in paths.runs.iterdir()) == runs_before
    assert (paths.registry / "ledger.jsonl").read_text() == ledger_before
    assert (paths.registry / "champion.json").read_text() == champion_before

    customers.unlink()  # the fix the message gives: fetched again from the (intact) remote copy
    failed = _cli(world, "ingest")
    assert failed.returncode == 2
    assert f"{paths.raw / 'orders.parquet'} does not match data version" in failed.stderr
    assert "(200 bytes)" in failed.stderr and "corrupted or truncated" in failed.stderr
    assert sorted(p.name for p in paths.runs.iterdir()) == runs_before
