"""Slack-format alerts to an incoming webhook, deduplicated and rate-limited.

The webhook URL comes from the environment variable `alerts.webhook_env`, else from the Prefect
Secret block `alerts.webhook_secret_block`. It is a secret: it is never logged, never written to a
file, and removed from any text an alert carries (an exception message may hold it). No URL
configured: the message is only logged. A failing webhook is retried with exponential backoff and
never raises.

    notify(settings, "drift", text, fingerprint)   # once per condition; clear() when it ends

State (what was last sent per kind, and when) lives in <data_dir>/alerts/state.json: the same
condition alerts once until it changes or clears, and a kind sends at most one message per
`alerts.min_interval_s`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from custintel.config import AlertsSection, Settings

log = logging.getLogger(__name__)
REDACTED = "<webhook-url>"


def webhook_url(cfg: AlertsSection) -> str | None:
    """The configured URL, or None. Never log the return value."""
    url = os.environ.get(cfg.webhook_env, "").strip()
    if url or not cfg.webhook_secret_block:
        return url or None
    try:
        from prefect.blocks.system import Secret

        return str(Secret.load(cfg.webhook_secret_block).get()).strip() or None
    except Exception as exc:  # noqa: BLE001 - a missing block must not fail the caller
        log.warning("cannot read Prefect Secret block %r (%s); alerts are only logged",
                    cfg.webhook_secret_block, type(exc).__name__)
        return None


def redact(text: str, url: str | None) -> str:
    """`text` without the URL (nor its path, which is the secret part of a Slack webhook)."""
    if not url:
        return text
    text = text.replace(url, REDACTED)
    from urllib.parse import urlsplit

    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    return text.replace(path, REDACTED) if len(path) > 1 else text


def _post(url: str, text: str, cfg: AlertsSection, retries: int) -> bool:
    import httpx

    delay = cfg.backoff_s
    for attempt in range(1, retries + 1):
        try:
            response = httpx.post(url, json={"text": text}, timeout=cfg.timeout_s)
            if response.status_code < 300:
                return True
            log.warning("alert webhook answered HTTP %s (attempt %d of %d)", response.status_code, attempt,
                        retries)
        except Exception as exc:  # noqa: BLE001 - httpx errors (and their text) may hold the URL
            log.warning("alert webhook call failed: %s (attempt %d of %d)", type(exc).__name__, attempt,
                        retries)
        if attempt < retries:
            time.sleep(delay)
            delay *= 2
    return False


def send_alert(text: str, cfg: AlertsSection, retries: int | None = None) -> bool:
    """Post `{"text": text}` to the webhook; True when delivered. Never raises."""
    url = webhook_url(cfg)
    if not url:
        log.info("alert (no webhook configured in $%s): %s", cfg.webhook_env, text)
        return False
    try:
        return _post(url, redact(text, url), cfg, retries or cfg.retries)
    except Exception as exc:  # noqa: BLE001 - alerts never fail the caller
        log.warning("alert not sent: %s", type(exc).__name__)
        return False


class AlertState:
    """What was last sent per alert kind: {kind: {"fingerprint", "sent_at", "text"}}."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict = json.loads(path.read_text()) if path.is_file() else {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=2))
        tmp.replace(self.path)


def state_file(settings: Settings) -> Path:
    return settings.data_dir / "alerts" / "state.json"


def notify(settings: Settings, kind: str, text: str, fingerprint: str, now: float | None = None) -> str:
    """Alert once per (kind, fingerprint). Returns "sent", "logged" (no webhook), "failed" (retried
    next time), "duplicate" (already alerted) or "rate_limited" (a message of this kind went out less
    than alerts.min_interval_s ago; sent on a later run if the condition persists)."""
    now = time.time() if now is None else now
    state = AlertState(state_file(settings))
    last = state.entries.get(kind)
    if last and last["fingerprint"] == fingerprint:
        return "duplicate"
    if last and now - last["sent_at"] < settings.alerts.min_interval_s:
        log.info("alert %s rate-limited (last one %.0f s ago)", kind, now - last["sent_at"])
        return "rate_limited"
    configured = webhook_url(settings.alerts) is not None
    delivered = send_alert(text, settings.alerts)
    if configured and not delivered:
        return "failed"
    state.entries[kind] = {"fingerprint": fingerprint, "sent_at": now,
                           "at": datetime.fromtimestamp(now, UTC).isoformat()}
    state.save()
    return "sent" if delivered else "logged"


def clear(settings: Settings, kind: str, text: str | None = None) -> str | None:
    """End the condition `kind`: post `text` (if given) once, and forget it so it can alert again."""
    state = AlertState(state_file(settings))
    if kind not in state.entries:
        return None
    outcome = None
    if text is not None:
        outcome = "sent" if send_alert(text, settings.alerts) else "logged"
    del state.entries[kind]
    state.save()
    return outcome


def flow_failed(settings: Settings, flow: str, exc: BaseException) -> str:
    """Alert a flow failure once per distinct error (until the flow succeeds again)."""
    message = redact(f"{type(exc).__name__}: {exc}", webhook_url(settings.alerts))[:500]
    return notify(settings, f"flow_failure:{flow}", f":x: custintel {flow} flow failed: {message}",
                  message)
