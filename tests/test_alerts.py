"""Alerts against a local HTTP receiver that records payloads: delivery, retries, deduplication,
rate limiting, and the webhook URL never showing up in logs or alert texts."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from custintel import alerts
from custintel.alerts import clear, flow_failed, notify, send_alert
from custintel.config import AlertsSection, settings_from_dict
from tests.conftest import tiny_params

TOKEN = "hookT0K3Nq9z"  # unique: grep for it in everything a run wrote
SECRET_PATH = f"/services/T0/B0/{TOKEN}"


@pytest.fixture
def receiver():
    received: list[dict] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}{SECRET_PATH}", received, status
    server.shutdown()


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr("custintel.alerts.time.sleep", waited.append)
    return waited


def _settings(tmp_path: Path, **alerts_cfg):
    raw = tiny_params(tmp_path / "data")
    raw["alerts"].update(webhook_env="TEST_HOOK", **alerts_cfg)
    return settings_from_dict(raw)


def test_alert_is_posted_in_slack_format(receiver, monkeypatch):
    url, received, _ = receiver
    monkeypatch.setenv("TEST_HOOK", url)
    assert send_alert("drift!", AlertsSection(webhook_env="TEST_HOOK"))
    assert received == [{"text": "drift!"}]


def test_no_url_only_logs(monkeypatch, caplog):
    caplog.set_level("INFO", logger="custintel.alerts")
    monkeypatch.delenv("TEST_HOOK", raising=False)
    assert not send_alert("hello", AlertsSection(webhook_env="TEST_HOOK"))
    assert "hello" in caplog.text


def test_failing_webhook_is_retried_with_backoff_and_never_raises(receiver, monkeypatch, caplog, sleeps):
    url, received, status = receiver
    status["code"] = 500
    monkeypatch.setenv("TEST_HOOK", url)
    assert not send_alert("x", AlertsSection(webhook_env="TEST_HOOK", retries=4, backoff_s=0.5))
    assert len(received) == 4 and sleeps == [0.5, 1.0, 2.0]
    assert "HTTP 500" in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize("bad_url", [
    "http://127.0.0.1:9" + SECRET_PATH,  # nothing listens: connection refused
    "http://[::1" + SECRET_PATH,  # malformed: httpx's error text would contain it
    "htp://example.invalid" + SECRET_PATH,  # unsupported scheme
    "http://nonexistent.invalid" + SECRET_PATH,  # DNS failure
])
def test_broken_webhook_never_raises_nor_leaks_the_url(bad_url, monkeypatch, caplog, sleeps, tmp_path):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("TEST_HOOK", bad_url)
    settings = _settings(tmp_path, timeout_s=1.0)
    assert not send_alert("x", settings.alerts)
    assert notify(settings, "drift", "drift!", "a") == "failed"  # not recorded: retried next run
    try:
        raise RuntimeError(f"cannot reach {bad_url}")
    except RuntimeError as exc:
        flow_failed(settings, "monitor", exc)
    assert TOKEN not in caplog.text
    assert not any(TOKEN in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_a_failure_text_holding_the_url_is_redacted(receiver, monkeypatch, tmp_path):
    url, received, _ = receiver
    monkeypatch.setenv("TEST_HOOK", url)
    settings = _settings(tmp_path)
    exc = ValueError(f"POST {url} failed; path {SECRET_PATH}")
    assert flow_failed(settings, "retrain", exc) == "sent"
    assert TOKEN not in received[0]["text"] and alerts.REDACTED in received[0]["text"]
    assert not any(TOKEN in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_same_condition_alerts_once_until_it_changes_or_clears(receiver, monkeypatch, tmp_path):
    url, received, _ = receiver
    monkeypatch.setenv("TEST_HOOK", url)
    settings = _settings(tmp_path, min_interval_s=3600)
    t0 = 1_000_000.0
    assert notify(settings, "drift", "drift: a", "a", now=t0) == "sent"
    assert notify(settings, "drift", "drift: a", "a", now=t0 + 10) == "duplicate"
    assert notify(settings, "drift", "drift: a", "a", now=t0 + 90_000) == "duplicate"  # still the same
    assert notify(settings, "drift", "drift: a, b", "a,b", now=t0 + 60) == "rate_limited"  # changed, too soon
    assert notify(settings, "drift", "drift: a, b", "a,b", now=t0 + 4000) == "sent"  # changed, later
    assert clear(settings, "drift", "cleared") == "sent"
    assert clear(settings, "drift", "cleared") is None  # nothing to clear any more
    assert notify(settings, "drift", "drift: a", "a", now=t0 + 4001) == "sent"  # alerts again after clearing
    assert [p["text"] for p in received] == ["drift: a", "drift: a, b", "cleared", "drift: a"]
    state = json.loads((settings.data_dir / "alerts" / "state.json").read_text())
    assert state["drift"]["fingerprint"] == "a"


def test_undelivered_alert_is_retried_on_the_next_run(receiver, monkeypatch, tmp_path, sleeps):
    url, received, status = receiver
    monkeypatch.setenv("TEST_HOOK", url)
    settings = _settings(tmp_path, retries=2)
    status["code"] = 503
    assert notify(settings, "drift", "drift!", "a") == "failed"
    status["code"] = 200
    assert notify(settings, "drift", "drift!", "a") == "sent"
    assert len(received) == 3

