"""Per-request stage timings, answered in a `Server-Timing` header (cheap enough to stay on: a few
`perf_counter` calls and one short header per request).

    server-timing: parse;dur=0.031, fetch;dur=0.402, transform;dur=0.048, model;dur=0.061,
                   segment;dur=0.022, assemble;dur=0.015, encode;dur=0.004, app;dur=0.690

Durations are milliseconds. `app` runs from the moment the request reaches the outermost custintel
middleware (inside BentoML's metrics, tracing, access-log and timeout middlewares) until the
response starts; the stages are the parts of it the endpoint timed (serving.service,
custintel.scoring), so `app` minus their sum is the framework inside the app (routing, FastAPI,
reading the body). benchmarks/serve_load.py collects the header per request.
"""

from __future__ import annotations

from time import perf_counter

SCOPE_KEY = "custintel.stages"  # the request's Stages, in the ASGI scope


class Stages:
    """Named durations of one request, recorded by `mark` (the time since the previous mark)."""

    __slots__ = ("began", "last", "names", "seconds")

    def __init__(self) -> None:
        self.began = self.last = perf_counter()
        self.names: list[str] = []
        self.seconds: list[float] = []

    def restart(self) -> None:
        """The next mark measures from now (skips time that is no stage, e.g. waiting for a thread)."""
        self.last = perf_counter()

    def mark(self, name: str) -> None:
        now = perf_counter()
        self.names.append(name)
        self.seconds.append(now - self.last)
        self.last = now

    def header(self) -> bytes:
        total = perf_counter() - self.began
        parts = [f"{name};dur={seconds * 1000:.3f}"
                 for name, seconds in zip(self.names, self.seconds, strict=True)]
        parts.append(f"app;dur={total * 1000:.3f}")
        return ", ".join(parts).encode()


class NoStages:
    """Stages that record nothing (callers outside a server request)."""

    __slots__ = ()

    def restart(self) -> None:
        pass

    def mark(self, name: str) -> None:
        pass


NO_STAGES = NoStages()


def parse_header(value: str) -> dict[str, float]:
    """{'fetch': 0.402, ..., 'app': 0.69} (ms) from a Server-Timing header this server sent."""
    timings = {}
    for part in value.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name and duration:
            timings[name] = float(duration)
    return timings


class ServerTimingMiddleware:
    """ASGI middleware: gives each HTTP request a Stages in its scope and answers them, with the
    total `app` time, in a Server-Timing header."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        stages = scope[SCOPE_KEY] = Stages()

        async def send_timed(message):
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"server-timing", stages.header())]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_timed)
