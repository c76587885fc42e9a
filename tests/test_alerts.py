"""Alerts against a local HTTP receiver that records payloads."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from custintel.alerts import send_alert
from custintel.config import AlertsSection


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
    yield f"http://127.0.0.1:{server.server_port}/hook", received, status
    server.shutdown()


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


def test_failing_webhook_is_retried_and_never_raises(receiver, monkeypatch, caplog):
    url, received, status = receiver
    status["code"] = 500
    monkeypatch.setenv("TEST_HOOK", url)
    monkeypatch.setattr("custintel.alerts.time.sleep", lambda s: None)
    assert not send_alert("x", AlertsSection(webhook_env="TEST_HOOK"), retries=3)
    assert len(received) == 3
    assert url not in caplog.text  # the webhook URL is a secret


def test_unreachable_webhook_never_raises(monkeypatch):
    monkeypatch.setenv("TEST_HOOK", "http://127.0.0.1:9/nothing")
    monkeypatch.setattr("custintel.alerts.time.sleep", lambda s: None)
    assert not send_alert("x", AlertsSection(webhook_env="TEST_HOOK", timeout_s=0.5), retries=2)
