"""Slack-format alerts to an incoming-webhook URL read from an environment variable.

No URL configured: the message is logged only. A failing webhook is retried with backoff and
never fails the caller. The URL itself is never logged.
"""

from __future__ import annotations

import logging
import os
import time

from custintel.config import AlertsSection

log = logging.getLogger(__name__)


def send_alert(text: str, cfg: AlertsSection, retries: int = 3) -> bool:
    """Post `{"text": text}` to the webhook; returns True when delivered."""
    url = os.environ.get(cfg.webhook_env, "").strip()
    if not url:
        log.info("alert (no webhook configured in $%s): %s", cfg.webhook_env, text)
        return False
    import httpx

    for attempt in range(retries):
        try:
            response = httpx.post(url, json={"text": text}, timeout=cfg.timeout_s)
            if response.status_code < 300:
                return True
            log.warning("alert webhook answered %s (attempt %d)", response.status_code, attempt + 1)
        except httpx.HTTPError as exc:
            log.warning("alert webhook failed: %s (attempt %d)", type(exc).__name__, attempt + 1)
        time.sleep(0.5 * 2**attempt)
    return False
