"""Scheduled deployments, defined in code and served by one long-running process:

    custintel schedule            # or: python -m flows.serve [--params params.yaml]

- `daily-monitor`: the `monitor` flow on schedule.monitor_cron; it starts `retrain` when the
  policy in drift.policy says retrain;
- `weekly-retrain`: the `retrain` flow on schedule.retrain_cron.

Both run in this process against the Prefect API at PREFECT_API_URL, or, when that is unset, a
`prefect server start` this command starts (state under <data_dir>/prefect, log in
<data_dir>/prefect-server.log): its scheduler creates the runs. Their tasks carry retries. Stop with
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def deployments(params_path: str, settings) -> list:
    from flows.monitor import monitor
    from flows.retrain import retrain

    parameters = {"params_path": params_path}
    return [
        monitor.to_deployment(
            name="daily-monitor", cron=settings.schedule.monitor_cron, parameters=parameters,
            description="Data quality + drift vs the champion; retrains when the policy says so."),
        retrain.to_deployment(
            name="weekly-retrain", cron=settings.schedule.retrain_cron, parameters=parameters,
            description="Ingest, features, tune + train, evaluate, drift, promote."),
    ]


def _start_server(log_file: Path) -> tuple[subprocess.Popen, str]:
    """A local `prefect server start` (API + scheduler, state under PREFECT_HOME): the ephemeral API
    that one-off runs use has no scheduler, so on it schedules never fire."""
    import httpx

    from custintel.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    with log_file.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}; see {log_file}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"prefect server did not answer within 300 s; see {log_file}")


def serve_all(params_path: str) -> None:
    """Serve both deployments; without PREFECT_API_URL, start a local Prefect server for them."""
    from custintel.config import load_settings
    from custintel.runtime import configure

    settings = load_settings(params_path)
    paths = configure(settings)
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server, os.environ["PREFECT_API_URL"] = _start_server(paths.root / "prefect-server.log")
        print(f"Prefect server (API + scheduler) on {os.environ['PREFECT_API_URL']}", flush=True)
    # SIGTERM (a service manager's stop) ends like Ctrl-C, so the server below is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        from prefect import serve

        serve(*deployments(params_path, settings))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    serve_all(parser.parse_args().params)


if __name__ == "__main__":
    main()
