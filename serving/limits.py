"""ASGI middleware: request bodies larger than serve.max_body_bytes are answered with 413 before
they reach an endpoint (declared Content-Length, or counted while a chunked body streams in;
bodies are read whole, at most max_bytes, before the endpoint runs)."""

from __future__ import annotations

import json


async def send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int | None = None):
        if max_bytes is None:
            from serving.settings import serve_settings

            max_bytes = serve_settings().max_body_bytes
        self.app, self.max_bytes = app, max_bytes

    def _message(self, size: str) -> dict:
        return {"error": f"request body: {size} is more than the {self.max_bytes} bytes allowed "
                         "(serve.max_body_bytes); split the request"}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await send_json(send, 413, self._message(f"{int(declared)} bytes"))
        # read the whole body first (at most max_bytes + one chunk), so a chunked body that turns out too
        # large is refused before any endpoint sees it, then replay it
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return None
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                return await send_json(send, 413, self._message(f"more than {self.max_bytes} bytes received"))
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive():
            return replay.pop() if replay else await receive()

        return await self.app(scope, replay_receive, send)
