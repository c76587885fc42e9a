"""Shared fixtures: tiny settings in a temporary data directory; a throwaway redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from custintel.config import Settings, settings_from_dict
from custintel.server import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Promotion gate for 2-epoch models on a few hundred holdout rows: 10 calibration bins of ~30
# customers are noisy and the shared test machine is too busy for a latency budget. The gate's own
# tests (tests/test_promotion_gate.py) use the defaults.
SMALL_RUN_PROMOTE = {"latency_budget_ms": 60000, "calibration": {"max_gap": 0.15, "max_ece": 0.3},
                     "bootstrap": {"n_resamples": 200, "confidence": 0.95}}


def tiny_params(data_dir: Path, n_customers: int = 300) -> dict:
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    raw["paths"]["data_dir"] = str(data_dir)
    raw["data"]["n_customers"] = n_customers
    raw["train"].update(max_epochs=2, batch_size=256)
    raw["train"]["tuning"]["n_trials"] = 2
    raw["drift"]["sample_size"] = 1000
    raw["promote"].update(SMALL_RUN_PROMOTE)
    return raw


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Settings:
    return settings_from_dict(tiny_params(tmp_path / "data"))


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(tmp_path / "data")))
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    """A throwaway redis-server on a free local port (data in a temp dir); yields its redis:// URL.

    Skipped when redis-server is not installed, unless CUSTINTEL_REQUIRE_REDIS is set (CI sets it,
    after installing redis-server), where a missing server fails the tests instead."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CUSTINTEL_REQUIRE_REDIS"):
            pytest.fail("redis-server is not on PATH but CUSTINTEL_REQUIRE_REDIS is set (.ci/run installs "
                        "it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server): Redis online store "
                    "tests skipped")
    import redis

    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--logfile", str(workdir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "redis.log").read_text() if (workdir / "redis.log").is_file() else ""
                    pytest.fail(f"redis-server did not start on port {port}: {log[-2000:]}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
