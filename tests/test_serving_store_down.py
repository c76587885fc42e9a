"""An unreachable online store is a clear 503 (and /readyz 503), and serving recovers by itself once
the store is back: a real BentoML server on a real redis-server that is stopped and restarted, and
the SQLite store's file missing then restored."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml

from custintel.config import load_settings
from custintel.paths import DataPaths
from custintel.server import free_port
from tests.conftest import redis_executable, start_redis, stop_redis
from tests.servable import materialize_in_child, running_server


def _until(check, timeout_s: float = 60.0):
    """Poll `check()` until it returns a truthy value (recovery takes a reconnect or two)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_redis_down_gives_503_and_serving_recovers_when_it_is_back(servable, tmp_path):
    exe = redis_executable()
    workdir, port = tmp_path / "redis", free_port()
    workdir.mkdir()
    redis_proc, url = start_redis(exe, workdir, port, persist=True)
    try:
        raw = {**servable["raw"], "feature_store": {**servable["raw"]["feature_store"],
                                                    "online_store": "redis", "redis_url": url}}
        params = servable["params"].parent / "params-redis.yaml"
        params.write_text(yaml.safe_dump(raw))
        done = materialize_in_child(params, timeout_s=600)
        assert done.returncode == 0, done.stderr[-3000:]
        with running_server(params, name="serve-redis") as server_url:
            def predict():
                return httpx.post(f"{server_url}/predict", json={"customer_ids": [1, 2]}, timeout=60)

            before = predict()
            assert before.status_code == 200 and before.json()["predictions"][0]["found"], before.text
            stop_redis(redis_proc)  # saves dump.rdb first
            down = predict()
            assert down.status_code == 503, down.text
            assert "online feature store unavailable" in down.json()["error"]
            assert httpx.get(f"{server_url}/readyz", timeout=30).status_code == 503
            assert httpx.get(f"{server_url}/healthz", timeout=30).status_code == 200  # alive, not ready
            redis_proc, _ = start_redis(exe, workdir, port, persist=True)  # same data back
            back = _until(lambda: (r := predict()).status_code == 200 and r)
            assert back, "serving did not recover after redis came back"
            assert back.json() == before.json()
            assert httpx.get(f"{server_url}/readyz", timeout=30).status_code == 200
    finally:
        stop_redis(redis_proc)


def test_missing_sqlite_store_file_is_unavailable_until_it_is_back(servable, tmp_path):
    from custintel import feature_store
    from custintel.config import settings_from_dict
    from custintel.online_rows import OnlineStoreUnavailable, read

    source = DataPaths(load_settings(servable["params"]).data_dir).feast
    settings = settings_from_dict({**servable["raw"], "paths": {"data_dir": str(tmp_path / "data")}})
    target = DataPaths(settings.data_dir).feast
    target.mkdir(parents=True)
    shutil.copy(source / "registry.db", target / "registry.db")  # definitions, but no online store file
    store = feature_store.open_store(settings)
    with pytest.raises(OnlineStoreUnavailable, match="unable to open database file"):
        read(store, [1], servable["features"])
    shutil.copy(source / "online_store.db", target / "online_store.db")
    rows = read(store, [1, 99999999], servable["features"], as_of=settings.snapshot_dates()[-1])
    assert rows.found.tolist() == [True, False] and not rows.stale.any()
