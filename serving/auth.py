"""Optional API-key authentication (ASGI middleware).

When the environment variable named by serve.api_key_env (default CUSTINTEL_API_KEY) is set and not
empty, every request needs the header `X-API-Key: <key>`; a missing or wrong key gets 401. Health
probes and Prometheus metrics (/healthz, /livez, /readyz, /metrics) stay open. Unset: no auth.
"""

from __future__ import annotations

import hmac
import os

from serving.limits import send_json

HEADER = b"x-api-key"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})


class ApiKeyMiddleware:
    def __init__(self, app, key: str | None = None, env_name: str | None = None):
        if env_name is None:
            from serving.settings import serve_settings

            env_name = serve_settings().api_key_env
        self.app, self.env_name = app, env_name
        self.key = (key if key is not None else os.environ.get(env_name, "")).encode() or None

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(HEADER)
        if given is None or not hmac.compare_digest(given, self.key):
            reason = "missing" if given is None else "wrong"
            return await send_json(send, 401, {
                "error": f"X-API-Key header {reason}: this server requires the API key set in its "
                         f"{self.env_name} environment variable"},
                headers=[(b"www-authenticate", b"X-API-Key")])
        return await self.app(scope, receive, send)
