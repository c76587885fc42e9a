"""Model lifecycle on a real trained model: the flow's promotion in the ledger with its lineage and
Bento bundle, the models CLI, concurrent promotions in separate processes, and a real BentoML
server that serves /metadata and swaps champions under load without failing a request."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from custintel.config import load_settings
from custintel.paths import DataPaths
from tests.servable import running_server
from tests.test_alerts import receiver  # noqa: F401, F811 - the local Slack webhook receiver fixture
from tests.test_end_to_end import ROOT, _retrain

pytestmark = pytest.mark.e2e


def _cli(params: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}
    proc = subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(params), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout) if proc.stdout.lstrip().startswith("{") else {"text": proc.stdout}


def _cli_async(params: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"} | (env or {})
    return subprocess.Popen([sys.executable, "-m", "custintel.cli", "-p", str(params), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def _copy_run(paths: DataPaths, run_id: str, new_id: str) -> str:
    """The same trained run under a new id, not yet registered: registering it makes a new store
    version (same weights, its own tag)."""
    shutil.copytree(paths.run_dir(run_id), paths.run_dir(new_id))
    (paths.run_dir(new_id) / "registered.json").unlink()
    return new_id


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    from tests.conftest import tiny_params

    tmp = tmp_path_factory.mktemp("lifecycle")
    raw = tiny_params(tmp / "data")
    raw["serve"]["reload_interval_s"] = 0.5
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    summary = _retrain(params)
    return params, summary, DataPaths(load_settings(params).data_dir)


def test_the_flows_promotion_is_in_the_ledger_with_lineage_and_a_bento(lifecycle):
    params, summary, paths = lifecycle
    decision = summary["promotion"]
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    assert {c["check"] for c in decision["sanity_checks"]} == {
        "finite predictions", "calibration gap", "expected calibration error", "scoring latency"}
    (entry,) = _cli(params, "models", "ledger")["entries"]
    assert entry["event"] == "promoted" and entry["tag"] == decision["challenger"]
    assert entry["actor"]["via"] == "prefect" and entry["actor"]["flow_run_id"]
    lineage = entry["lineage"]
    tuning = json.loads((Path(summary["reports"]["run_dir"]) / "tuning.json").read_text())
    assert lineage["data_version"] == summary["data_version"]
    assert lineage["optuna"]["study"] == tuning["study"] and lineage["optuna"]["trial"] is not None
    assert lineage["feast_registry"]["version_id"] and len(lineage["git_commit"]) >= 40
    assert lineage["metrics"]["churn_auc"] == pytest.approx(summary["metrics"]["churn_auc"])
    bento_name, bento_version = entry["bento"].split(":")
    bento_file = paths.bentoml_home / "bentos" / bento_name / bento_version / "bento.yaml"
    assert bento_file.is_file() and entry["tag"] in bento_file.read_text()
    listing = _cli(params, "models", "list")
    assert listing["champion"] == entry["tag"] and [v["champion"] for v in listing["versions"]] == [True]
    card = _cli(params, "models", "show")["text"]
    assert "# Model card: run" in card and "## Lineage" in card and tuning["study"] in card


def test_concurrent_gated_promotions_are_judged_one_after_the_other(lifecycle, receiver):  # noqa: F811
    params, summary, paths = lifecycle
    hook, alerts, _ = receiver
    champion = summary["promotion"]["challenger"]
    runs = [_copy_run(paths, summary["run_id"], f"{summary['run_id']}-copy{i}") for i in (1, 2)]
    webhook = {load_settings(params).alerts.webhook_env: hook}
    procs = [_cli_async(params, "promote", "--run-id", run, env=webhook) for run in runs]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    decisions = [json.loads(out) for out, _ in outputs]
    # same weights as the champion: a zero delta, whose CI contains zero -> both rejected
    assert [d["promoted"] for d in decisions] == [False, False]
    assert all(d["delta"] == 0 and any("does not exclude zero" in r for r in d["reasons"]) for d in decisions)
    entries = _cli(params, "models", "ledger")["entries"]
    assert [e["event"] for e in entries] == ["promoted", "rejected", "rejected"]
    assert {e["tag"] for e in entries[1:]} == {d["challenger"] for d in decisions}
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert all(e["champion_before"] == champion and e["actor"]["via"] == "cli" for e in entries[1:])
    assert json.loads((paths.registry / "champion.json").read_text())["champion"] == champion
    # one Slack message per rejection, with the deltas and the reason
    assert sorted(a["text"].split()[4] for a in alerts) == sorted(d["challenger"] for d in decisions)
    assert all("rejected challenger" in a["text"] and "delta +0.0000" in a["text"] and "CI" in a["text"]
               and "does not exclude zero" in a["text"] for a in alerts)


@pytest.fixture(scope="module")
def live(lifecycle):
    params, summary, paths = lifecycle
    with running_server(params) as url:
        yield url


class _Load:
    """Threads posting /predict back to back; every answer's status and model version, in order."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url, self.answers, self.failures = url, [], []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/predict", json={"customer_ids": [1, 2, 3]})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    self.answers.append(response.json()["model_version"])

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, version: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        start = len(self.answers)
        while time.monotonic() < deadline:
            if version in self.answers[start:][-3:]:
                return
            time.sleep(0.2)
        raise AssertionError(f"the server never answered with {version}; last: {self.answers[-3:]}")


def test_metadata_and_hot_swap_under_load_without_failed_requests(lifecycle, live):
    params, summary, paths = lifecycle
    first = json.loads((paths.registry / "champion.json").read_text())["champion"]
    metadata = httpx.get(f"{live}/metadata", timeout=30).json()
    assert metadata["model_version"] == first
    lineage = metadata["lineage"]
    assert lineage["tag"] == first and lineage["data_version"] == summary["data_version"]
    assert lineage["optuna"]["study"].startswith("custintel-") and lineage["feast_registry"]["version_id"]
    assert lineage["git_commit"] and lineage["metrics"]["churn_auc"] > 0
    # a second stored version of the same run (registered under its own tag)
    copy = _copy_run(paths, summary["run_id"], "hot-swap")
    second = _cli(params, "promote", "--run-id", copy)["challenger"]
    assert second != first
    with _Load(live) as load:
        load.wait_for(first)
        promoted = _cli(params, "models", "promote", second, "--reason", "hot swap test")
        assert promoted["event"] == "manual_promotion" and promoted["actor"]["via"] == "cli"
        load.wait_for(second)
        assert httpx.get(f"{live}/metadata", timeout=30).json()["model_version"] == second
        rolled = _cli(params, "rollback")
        assert rolled["tag"] == first and rolled["champion_before"] == second
        load.wait_for(first)
    assert load.failures == []
    assert {first, second} <= set(load.answers) and len(load.answers) > 20
    # the answers switch model version in blocks (old, new, old), not back and forth at random
    switches = sum(a != b for a, b in zip(load.answers, load.answers[1:], strict=False))
    assert 2 <= switches <= 2 * (1 + 2 * 3)  # per swap: one switch, plus at most one straggler per thread
