"""The whole `retrain` flow on a tiny dataset (real DVC, Feast, Prefect, Lightning, Evidently,
BentoML), a second run that reuses what is unchanged, and a real BentoML server over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from custintel.config import load_settings
from custintel.paths import DataPaths

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def _retrain(params: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}
    proc = subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(params), "retrain"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Reports:" in proc.stdout
    paths = DataPaths(load_settings(params).data_dir)
    run_id = (paths.runs / "LATEST").read_text().strip()
    return json.loads((paths.run_dir(run_id) / "summary.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import yaml

    from tests.conftest import tiny_params

    tmp = tmp_path_factory.mktemp("e2e")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tmp / "data")))
    first = _retrain(params)
    return params, first


def test_first_run_trains_evaluates_reports_and_promotes(trained):
    params, summary = trained
    paths = DataPaths(load_settings(params).data_dir)
    assert summary["data_created"] and not summary["reused_run"]
    assert summary["metrics"]["churn_auc"] > 0.6  # recency alone separates churners on this data
    assert summary["metrics"]["value_mae"] > 0 and -1 <= summary["metrics"]["value_spearman"] <= 1
    assert set(summary["baselines"]) == {"lightgbm", "bgnbd_gamma_gamma", "rfm_rule"}
    metrics = json.loads(Path(summary["reports"]["metrics"]).read_text())
    card = Path(summary["reports"]["model_card"]).read_text()
    for part in ("## Where the model loses", "bgnbd_gamma_gamma", "Bayes-optimal (ground truth)",
                 "clairvoyant (knows who is active)", "git commit", metrics["data_version"],
                 "churn Brier score", "top-10% revenue capture"):
        assert part in card
    for plot in ("calibration.png", "deciles.png", "gain.png"):
        assert (Path(summary["reports"]["run_dir"]) / plot).stat().st_size > 5000
    # segments, tiers and batch scores of every current customer
    tiers = metrics["tiers"]
    assert [t["tier"] for t in tiers] == ["inactive", "low", "mid", "high"]
    active = [t["mean_actual_spend"] for t in tiers[1:] if t["customers"]]
    assert active == sorted(active)  # actual holdout spend rises across the value tiers
    segments = json.loads(Path(summary["reports"]["segments"]).read_text())
    assert 3 <= segments["k"] <= 8
    assert sum(s["customers"] for s in segments["segments"]) == segments["customers"]
    assert all("%" in s["top_categories"] for s in segments["segments"])  # e.g. "c3 41%, c1 22%, c5 9%"
    scores = pd.read_parquet(summary["reports"]["scores"])
    assert len(scores) == segments["customers"] and scores["revenue_at_risk"].is_monotonic_decreasing
    assert set(scores["action"]) <= set(load_settings(params).playbook.values())
    assert metrics["oracle"]["n_rows"] == metrics["model"]["n_rows"]  # generated data: truth known
    assert Path(summary["reports"]["drift_html"]).stat().st_size > 1000
    drift = json.loads(Path(summary["reports"]["drift_json"]).read_text())
    assert set(drift["per_feature"]) and 0 <= drift["drifted_share"] <= 1
    promotion = summary["promotion"]
    assert promotion["promoted"] and promotion["reason"] == "no champion yet"
    champion = json.loads((paths.registry / "champion.json").read_text())["champion"]
    assert champion == promotion["challenger"]
    # everything lives under the data dir: DVC remote, Prefect DB, BentoML store, Feast
    assert any(paths.dvc_remote.rglob("*"))
    assert (paths.prefect_home / "prefect.db").is_file()
    assert any((paths.bentoml_home / "models").rglob("model.json"))
    assert (paths.feast / "online_store.db").is_file()


def test_second_run_pulls_versioned_data_and_reuses_the_run(trained):
    params, first = trained
    paths = DataPaths(load_settings(params).data_dir)
    # Lose the working copy and the local cache: the flow must pull the data back from the remote.
    shutil.rmtree(paths.raw)
    shutil.rmtree(paths.dvc_repo / ".dvc" / "cache")
    second = _retrain(params)
    assert second["data_version"] == first["data_version"]
    assert not second["data_created"] and second["features_reused"] and second["reused_run"]
    assert second["run_id"] == first["run_id"]
    assert not second["promotion"]["promoted"]
    assert (paths.raw / "orders.parquet").is_file()


@pytest.fixture(scope="module")
def live_server(trained):
    from tests.servable import running_server

    params, summary = trained
    with running_server(params) as url:
        yield url, summary


def test_server_predicts_known_and_unknown_customers(live_server):
    url, summary = live_server
    response = httpx.post(f"{url}/predict", json={"customer_ids": [1, 2, 99999999]}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == summary["promotion"]["challenger"]
    known, other, unknown = body["predictions"]
    assert known["customer_id"] == 1 and known["found"] and not known["stale"]
    assert known["model_version"] == body["model_version"]
    assert known["feature_timestamp"].startswith("2025-12-31")  # the newest snapshot, data.end_date
    assert 0 <= known["churn_probability"] <= 1 and known["predicted_spend"] >= 0
    segments = httpx.get(f"{url}/segments", timeout=30).json()
    names = {s["segment_id"]: s["name"] for s in segments["segments"]}
    assert known["segment_name"] == names[known["segment_id"]]
    assert known["value_tier"] in ("inactive", "low", "mid", "high")
    # the server answers with the tier and segment batch scoring wrote for the same customer
    scores = pd.read_parquet(summary["reports"]["scores"]).set_index("customer_id")
    assert scores.loc[1, "value_tier"] == known["value_tier"]
    assert scores.loc[1, "segment_id"] == known["segment_id"]
    assert scores.loc[1, "churn_probability"] == pytest.approx(known["churn_probability"], abs=1e-5)
    assert other["found"]
    assert unknown == {"customer_id": 99999999, "found": False,
                       "error": "customer not found in the online feature store"}


@pytest.mark.parametrize("payload", [{"customer_ids": []}, {"customer_ids": ["abc"]}, {"ids": [1]}])
def test_server_rejects_bad_requests_and_keeps_serving(live_server, payload):
    url, _ = live_server
    response = httpx.post(f"{url}/predict", json=payload, timeout=30)
    assert response.status_code == 422, response.text
    assert "customer_ids" in response.text
    assert httpx.post(f"{url}/predict", json={"customer_ids": [1]}, timeout=30).status_code == 200


def _cli(params: Path, *args: str, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(params), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc, json.loads(proc.stdout[proc.stdout.index("{"):])


def test_monitor_flags_a_broken_feed_once_lists_runs_and_never_leaks_the_webhook(trained, tmp_path):
    import yaml

    from tests.test_alerts import SECRET_PATH, TOKEN

    params, _ = trained
    paths = DataPaths(load_settings(params).data_dir)
    with _receiver() as (url, received):
        hook = {"CUSTINTEL_SLACK_WEBHOOK_URL": url}
        outputs = []
        # the data the champion trained on: quiet
        proc, quiet = _cli(params, "monitor", "--no-refresh", env_extra=hook)
        outputs.append(proc)
        assert quiet["status"] == "no_drift" and quiet["action"] == "none" and received == []
        # a broken upstream feed (amounts in cents from October): a quality failure, alerted once;
        # the URL now comes from a Prefect Secret block (stored encrypted in the Prefect DB)
        outputs.append(_save_secret(params, url, "slack-webhook"))
        raw = yaml.safe_load(params.read_text())
        raw["data"].update(scenario="broken_feed", scenario_start="2025-10-01")
        raw["alerts"]["webhook_secret_block"] = "slack-webhook"
        broken_params = tmp_path / "broken.yaml"
        broken_params.write_text(yaml.safe_dump(raw))
        proc, broken = _cli(broken_params, "monitor", "--no-retrain")
        outputs.append(proc)
        assert broken["status"] == "failed" and broken["action"] == "alert" and broken["alert"] == "sent"
        assert len(received) == 1 and "FAILED" in received[0]["text"]
        assert "monetary_mean" in received[0]["text"]
        proc, again = _cli(broken_params, "monitor", "--no-retrain", "--no-refresh")
        outputs.append(proc)
        assert again["alert"] == "duplicate" and len(received) == 1
        proc, listing = _cli(broken_params, "monitor-runs")
        assert [r["status"] for r in listing["runs"][:3]] == ["failed", "failed", "no_drift"]
        assert all(Path(r["html"]).is_file() for r in listing["runs"][:3])
        # a malformed webhook URL (the env var wins over the block): the alert fails quietly, the run
        # still succeeds
        (paths.root / "alerts" / "state.json").unlink()
        proc, bad = _cli(broken_params, "monitor", "--no-retrain", "--no-refresh",
                         env_extra={"CUSTINTEL_SLACK_WEBHOOK_URL": "http://[::1" + SECRET_PATH})
        outputs.append(proc)
        assert bad["alert"] == "failed"
    for proc in outputs:
        assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    leaked = [p for p in paths.root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == []


def _save_secret(params: Path, value: str, name: str) -> subprocess.CompletedProcess:
    script = ("import sys\n"
              "from custintel.config import load_settings\n"
              "from custintel.runtime import configure\n"
              "configure(load_settings(sys.argv[1]))\n"
              "from prefect.blocks.system import Secret\n"
              "Secret(value=sys.argv[2]).save(sys.argv[3], overwrite=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}
    proc = subprocess.run([sys.executable, "-c", script, str(params), value, name], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@contextlib.contextmanager
def _receiver():
    """A local Slack stand-in recording the JSON payloads it receives."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tests.test_alerts import SECRET_PATH

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{SECRET_PATH}", received
    finally:
        server.shutdown()
