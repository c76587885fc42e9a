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
    raw["schedule"]["retry_backoff_s"] = 0.1  # a test that breaks a flaky task waits 0.1/0.2/0.4 s, not 2/4/8
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
    exe = redis_executable()
    workdir = tmp_path_factory.mktemp("redis")
    process, url = start_redis(exe, workdir, free_port())
    try:
        yield url
    finally:
        stop_redis(process)


def redis_executable() -> str:
    """Path of redis-server; skips the test when it is not installed, unless CUSTINTEL_REQUIRE_REDIS is
    set (then the test fails)."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CUSTINTEL_REQUIRE_REDIS"):
            pytest.fail("redis-server is not on PATH but CUSTINTEL_REQUIRE_REDIS is set (.ci/run installs "
                        "it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server): Redis online store "
                    "tests skipped")
    return exe


def start_redis(exe: str, workdir: Path, port: int, persist: bool = False) -> tuple[subprocess.Popen, str]:
    """redis-server on 127.0.0.1:`port` with its files in `workdir`, once it answers PING; returns the
    process and its redis:// URL. `persist`: SHUTDOWN writes <workdir>/dump.rdb and a restart loads it."""
    import redis

    process = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "3600 1" if persist else "", "--appendonly", "no", "--daemonize", "no",
         "--sanitize-dump-payload", "yes",  # every RESTORE the materializer sends is checked in depth
         "--logfile", str(workdir / "redis.log")],
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
                    stop_redis(process)
                    pytest.fail(f"redis-server did not start on port {port}: {log[-2000:]}")
                time.sleep(0.05)
    finally:
        client.close()
    return process, f"redis://127.0.0.1:{port}"


def stop_redis(process: subprocess.Popen) -> None:
    """SIGTERM (a persisting server saves first), SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def servable(tmp_path_factory) -> dict:
    """A data dir with a champion model and a materialized SQLite online store (tests/servable.py,
    about two minutes); small serving limits. Returns params (the file), tag, run_dir, features."""
    import json
    import sys

    tmp = tmp_path_factory.mktemp("servable")
    raw = tiny_params(tmp / "data")
    raw["train"]["max_epochs"] = 1
    raw["train"]["tuning"]["n_trials"] = 1
    raw["serve"].update(max_ids_per_request=50, max_feature_rows_per_request=20, max_body_bytes=65536)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}
    proc = subprocess.run([sys.executable, "-m", "tests.servable", str(params)], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"params": params, "raw": raw, **built}
