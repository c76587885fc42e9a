import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "feast", "prefect", "bentoml", "dvc", "lightning", "evidently", "optuna", "pandas"]


def test_help_imports_nothing_heavy():
    code = ("import sys; from typer.testing import CliRunner; from custintel.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_step_has_a_subcommand():
    out = subprocess.run([sys.executable, "-m", "custintel.cli", "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    for command in ("generate", "import", "data-versions", "validate", "ingest", "features", "feast-apply",
                    "materialize", "train", "evaluate",
                    "drift", "monitor", "monitor-runs", "schedule", "promote", "rollback", "models", "serve",
                    "predict", "retrain"):
        assert command in out


def test_bad_config_is_one_clear_error_without_traceback(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text((ROOT / "params.yaml").read_text().replace("horizon_days: 90", "horizon_days: soon"))
    proc = subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(bad), "ingest"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "features.horizon_days" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_params_file_can_come_from_the_environment(tmp_path):
    bad = tmp_path / "from-env.yaml"
    bad.write_text("source:\n  kind: file\n")
    env = {**os.environ, "CUSTINTEL_PARAMS": str(bad)}
    proc = subprocess.run([sys.executable, "-m", "custintel.cli", "ingest"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{bad} is invalid" in proc.stderr and "source.path is required" in proc.stderr


def test_model_commands_without_models_are_one_clear_error(tiny_params_file):
    env = {k: v for k, v in os.environ.items() if k != "CUSTINTEL_DATA_DIR"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "custintel.cli", "-p", str(tiny_params_file), *args],
                              capture_output=True, text=True, cwd=ROOT, env=env)

    for args, message in [(("models", "promote", "customer_model:nope"), "not in the BentoML store"),
                          (("rollback",), "no earlier champion"),
                          (("models", "show"), "No champion yet")]:
        proc = run(*args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert '"entries": []' in run("models", "ledger").stdout
