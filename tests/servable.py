"""Build a servable data directory fast: tiny generated data, features, Feast (apply + materialize),
one short training run (one Optuna trial, one epoch), registered in the BentoML store as champion.

    python -m tests.servable PARAMS_FILE     # run in a child process: BENTOML_HOME is set per data dir

The serving tests need a real champion and a real online store, not the whole retrain flow.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path


def build(params_file: Path) -> dict:
    from custintel.config import load_settings
    from custintel.runtime import configure

    settings = load_settings(params_file)
    configure(settings)  # before bentoml is imported
    from custintel import registry
    from custintel.paths import DataPaths
    from custintel.runs import new_run_id, read_json
    from custintel.steps.features import build_features, feast_apply, feast_materialize
    from custintel.steps.ingest import ingest
    from custintel.steps.train import train

    paths = DataPaths(settings.data_dir)
    version = ingest(settings)["data_version"]
    build_features(settings, version)
    feast_apply(settings)
    feast_materialize(settings)
    run_dir = paths.run_dir(new_run_id())
    run_dir.mkdir(parents=True)
    train(settings, run_dir, version)
    spec = read_json(run_dir / "model" / "model.json")
    tag = registry.save_to_store(run_dir / "model", {
        "run_id": run_dir.name, "data_version": version, "feature_service": spec["feature_service"],
        "features": spec["scaler"]["feature_names"]})
    registry.promote_by_hand(paths, tag, registry.cli_actor("tests.servable"), "test fixture")
    return {"tag": tag, "run_dir": str(run_dir), "features": spec["scaler"]["feature_names"]}


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]))))


def serving_env(params_file: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a server on `params_file`'s data dir (no API key unless `extra` sets one)."""
    import os

    from custintel.config import load_settings
    from custintel.runtime import environment

    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_API_KEY"}
    return {**env, **environment(load_settings(params_file)), **(extra or {})}


@contextlib.contextmanager
def running_server(params_file: Path, extra_env: dict[str, str] | None = None, name: str = "serve"):
    """A real BentoML server (custintel.server) on a free port until the block ends; yields its URL."""
    from custintel import server

    port = server.free_port()
    proc = server.start(params_file, "127.0.0.1", port, log_file=params_file.parent / f"{name}.log",
                        env=serving_env(params_file, extra_env))
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(proc, url, timeout_s=300)
        yield url
    finally:
        server.stop(proc)


def materialize_in_child(params_file: Path, timeout_s: int = 1200):
    """Materialize `params_file`'s Feast online store in a child process (BENTOML_HOME and friends are
    set per data dir, as for a server); returns the CompletedProcess."""
    import subprocess

    script = ("import sys; from custintel.config import load_settings; "
              "from custintel.runtime import configure; "
              "from custintel.steps.features import feast_materialize; s = load_settings(sys.argv[1]); "
              "configure(s); feast_materialize(s)")
    return subprocess.run([sys.executable, "-c", script, str(params_file)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, env=serving_env(params_file),
                          timeout=timeout_s)
