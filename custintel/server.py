"""Start, probe and stop the BentoML server as a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from custintel.config import PARAMS_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:CustomerIntelService"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(params_path: Path, host: str, port: int, log_file: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """`bentoml serve` in a child process; `env` defaults to this process's environment (configured
    by custintel.runtime)."""
    env = {**(env or os.environ), PARAMS_ENV: str(params_path.resolve())}
    out = open(log_file, "w") if log_file else None  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port),
         "--working-dir", str(PROJECT_ROOT)],
        env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the BentoML server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the BentoML server at {url} was not ready after {timeout_s:.0f} s")


def stop(proc: subprocess.Popen, timeout_s: float = 40.0) -> None:
    """SIGTERM (the serve process stops its worker), SIGKILL only as a last resort."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
