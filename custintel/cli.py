"""The `custintel` command: one subcommand per pipeline step, plus the whole `retrain` flow.

    custintel --help
    custintel retrain --serve-check     # the main job, end to end

Heavy libraries are imported inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from custintel.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Customer-intelligence MLOps platform: churn risk, expected spend and segments.")
_state: dict = {"params": Path("params.yaml"), "verbose": False}

RunId = Annotated[str | None, typer.Option("--run-id", help="Run directory name (default: latest run).")]


@app.callback()
def _root(
    params: Annotated[Path | None, typer.Option(
        "--params", "-p", help="Params file (default: $CUSTINTEL_PARAMS, else params.yaml).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    from custintel.config import PARAMS_ENV

    _state.update(params=params or Path(os.environ.get(PARAMS_ENV) or "params.yaml"), verbose=verbose)


def _settings():
    from custintel.config import load_settings
    from custintel.runtime import configure, setup_logging

    settings = load_settings(_state["params"])
    configure(settings)
    setup_logging(_state["verbose"])
    return settings


def _print(payload: dict) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _run_dir(settings, run_id: str | None, create: bool = False) -> Path:
    from custintel.paths import DataPaths
    from custintel.runs import new_run_id, resolve_run

    paths = DataPaths(settings.data_dir)
    if create:
        run_dir = paths.run_dir(run_id or new_run_id())
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    return resolve_run(paths, run_id)


def _data_version(settings) -> str:
    from custintel.data.versioning import data_version
    from custintel.paths import DataPaths

    version = data_version(DataPaths(settings.data_dir).dvc_repo)
    if version is None:
        raise UserError("No versioned raw data yet: run `custintel ingest` first.")
    return version


@app.command()
def generate(
    n_customers: Annotated[int | None, typer.Option(help="Override data.n_customers.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override base.seed.")] = None,
    scenario: Annotated[str | None, typer.Option(help="Override data.scenario (e.g. churn_wave).")] = None,
    scenario_start: Annotated[str | None, typer.Option(
        help="Override data.scenario_start (YYYY-MM-DD).")] = None,
) -> None:
    """Generate the synthetic raw tables and version them with DVC (add + push).

    Overrides make an ad-hoc data version; `ingest`/`retrain` follow params.yaml and regenerate
    when it differs, so put a scenario you want to retrain on into params.yaml."""
    from custintel.config import settings_from_dict
    from custintel.steps.ingest import generate_and_version

    settings = _settings()
    raw = settings.model_dump(mode="json")
    overrides = {"n_customers": n_customers, "scenario": scenario, "scenario_start": scenario_start}
    raw["data"].update({k: v for k, v in overrides.items() if v is not None})
    if seed is not None:
        raw["base"]["seed"] = seed
    _print(generate_and_version(settings_from_dict(raw, "command-line options + params.yaml")))


@app.command("import")
def import_log(
    path: Annotated[str | None, typer.Argument(
        help="Log file (CSV, whitespace-separated text, parquet) or package:<package>/<file>; "
             "default source.path.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="auto, csv, whitespace or parquet.")] = None,
    customer_id: Annotated[str | None, typer.Option(help="Column holding the customer id.")] = None,
    timestamp: Annotated[str | None, typer.Option(help="Column holding the transaction time.")] = None,
    amount: Annotated[str | None, typer.Option(help="Column holding the amount paid.")] = None,
    quantity: Annotated[str | None, typer.Option(help="Column holding the quantity (optional).")] = None,
    product: Annotated[str | None, typer.Option(help="Column holding the product (optional).")] = None,
    category: Annotated[str | None, typer.Option(help="Column holding the category (optional).")] = None,
    timestamp_format: Annotated[str | None, typer.Option(help="strptime format, e.g. %Y%m%d.")] = None,
) -> None:
    """Import a transaction log, version it with DVC (add + push) and validate it.

    Options override the `source` section of params.yaml. To train on the log, put the same
    settings into that section (kind: file), or pin the printed version with versioning.revision."""
    from custintel.config import settings_from_dict
    from custintel.steps.ingest import import_and_version
    from custintel.steps.ingest import validate as run_validation

    raw = _settings().model_dump(mode="json")
    source = raw["source"]
    source.update({k: v for k, v in {"kind": "file", "path": path, "format": fmt,
                                     "timestamp_format": timestamp_format}.items() if v is not None})
    columns = {"customer_id": customer_id, "timestamp": timestamp, "amount": amount, "quantity": quantity,
               "product": product, "category": category}
    source["columns"].update({k: v for k, v in columns.items() if v is not None})
    settings = settings_from_dict(raw, "command-line options + params.yaml")
    result = import_and_version(settings)
    result["validation"] = run_validation(settings, result["data_version"])
    _print(result)


@app.command("data-versions")
def data_versions(
    tag: Annotated[str | None, typer.Option(help="Name a version (usable as versioning.revision).")] = None,
    version: Annotated[str | None, typer.Option(
        help="Version (or unique prefix, or tag) to name with --tag; default the current one.")] = None,
) -> None:
    """List the catalogued raw-data versions (pin one with versioning.revision in params.yaml)."""
    from custintel.data import catalogue
    from custintel.paths import DataPaths

    root = DataPaths(_settings().data_dir).dvc_repo
    if tag is not None:
        catalogue.add_tag(root, tag, version)
    elif version is not None:
        raise UserError("--version names the version to tag: pass --tag NAME with it.")
    _print({"versions": catalogue.list_versions(root)})


@app.command()
def validate() -> None:
    """Schema-check the raw tables into clean/ and quarantine/ and print the counts."""
    from custintel.steps.ingest import validate as run

    settings = _settings()
    _print(run(settings, _data_version(settings)))


@app.command()
def ingest() -> None:
    """Make sure the configured dataset is versioned (generating it if needed), then dvc pull it."""
    from custintel.steps.ingest import ingest as run

    _print(run(_settings()))


@app.command()
def features(force: Annotated[bool, typer.Option(help="Recompute even if unchanged.")] = False) -> None:
    """Compute point-in-time features and labels into the offline store (parquet)."""
    from custintel.steps.features import build_features

    settings = _settings()
    _print(build_features(settings, _data_version(settings), force=force))


@app.command("feast-apply")
def feast_apply() -> None:
    """Register the Feast entity, source, feature view and feature service."""
    from custintel.steps.features import feast_apply as run

    _print({"applied": run(_settings())})


@app.command()
def materialize(
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Load only what is newer than each view's watermark (idempotent).")] = False,
    end_date: Annotated[str | None, typer.Option(
        "--end-date", help="With --incremental: end of the window, ISO date/time in UTC (default: just "
                           "past the newest snapshot); never in the future.")] = None,
) -> None:
    """Materialize the newest snapshot into the online store (SQLite or Redis, params.yaml feature_store)."""
    from custintel.steps.features import feast_materialize

    end = None
    if end_date is not None:
        from datetime import UTC, datetime

        try:
            end = datetime.fromisoformat(end_date)
        except ValueError:
            raise UserError(f"--end-date {end_date!r} is not an ISO date or date-time") from None
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end
    _print(feast_materialize(_settings(), incremental=incremental, end_date=end))


@app.command()
def train(run_id: RunId = None) -> None:
    """Tune (Optuna) and train the multi-task model on the Feast training set."""
    from custintel.paths import DataPaths
    from custintel.steps.train import train as run

    settings = _settings()
    run_dir = _run_dir(settings, run_id, create=True)
    version = _data_version(settings)
    result = run(settings, run_dir, version)
    (DataPaths(settings.data_dir).runs / "LATEST").write_text(run_dir.name)
    _print(result)  # the run is indexed for reuse by `evaluate`, once its metrics exist


@app.command()
def evaluate(run_id: RunId = None) -> None:
    """Score the run's model and baselines on the time-based holdout -> metrics.json."""
    from custintel.paths import DataPaths
    from custintel.runs import record_run, training_key
    from custintel.steps.evaluate import evaluate as run

    settings = _settings()
    run_dir = _run_dir(settings, run_id)
    version = _data_version(settings)
    metrics = run(settings, run_dir, version)
    record_run(DataPaths(settings.data_dir), training_key(settings, version), run_dir.name)
    _print(metrics)


@app.command()
def drift(run_id: RunId = None) -> None:
    """One monitoring run into the run directory: the champion (else this run) vs the newest snapshot."""
    from custintel.steps.monitor import drift as run

    settings = _settings()
    _print(run(settings, _run_dir(settings, run_id)))


@app.command()
def monitor(
    retrain: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Start the retrain flow when the policy says retrain.")] = True,
    refresh: Annotated[bool, typer.Option(
        "--refresh/--no-refresh", help="Ingest and rebuild features first (reused when unchanged).")] = True,
) -> None:
    """The Prefect `monitor` flow: data quality, feature/prediction/target drift, realised performance,
    the policy's action (none, alert, retrain); report indexed under <data_dir>/monitoring."""
    _settings()
    from flows.monitor import monitor as flow

    _print(flow(params_path=str(_state["params"]), retrain_on_policy=retrain, refresh=refresh))


@app.command()
def schedule() -> None:
    """Serve the scheduled Prefect deployments (monitor daily, retrain weekly; params.yaml schedule)."""
    settings = _settings()
    from flows.serve import serve_all

    typer.echo(f"serving daily-monitor ({settings.schedule.monitor_cron}) and weekly-retrain "
               f"({settings.schedule.retrain_cron}); Ctrl-C to stop")
    serve_all(str(_state["params"]))


@app.command("monitor-runs")
def monitor_runs(
    limit: Annotated[int, typer.Option(help="Show at most this many runs (newest first).", min=1)] = 20,
) -> None:
    """List past monitoring runs: status, action, drifted features, report paths."""
    from custintel.steps.monitor import past_runs

    _print({"runs": past_runs(_settings(), limit)})


@app.command()
def promote(run_id: RunId = None) -> None:
    """Register the run's model in the BentoML store; promote it if it passes the champion/challenger gate."""
    from custintel.registry import cli_actor
    from custintel.steps.promote import promote as run
    from custintel.steps.promote import register

    settings = _settings()
    run_dir = _run_dir(settings, run_id)
    _print(run(settings, run_dir, register(settings, run_dir), cli_actor("custintel promote")))


Reason = Annotated[str | None, typer.Option(help="Why (kept in the promotion ledger).")]


@app.command("score-batch")
def score_batch(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Parquet file to write (default <data_dir>/batch_scores.parquet).")] = None,
    model_tag: Annotated[str | None, typer.Option(
        "--model-tag", help="Registered model to score with (default: the champion).")] = None,
) -> None:
    """Score every customer of the newest offline snapshot (churn, spend, tier, segment, revenue at risk,
    action) into one parquet file."""
    from custintel.batch_scoring import score_batch as run

    settings = _settings()
    _print(run(settings, out or settings.data_dir / "batch_scores.parquet", model_tag))


@app.command()
def rollback(reason: Reason = None) -> None:
    """Make the previous champion (the one before the current in the ledger) the champion again."""
    from custintel.registry import cli_actor
    from custintel.steps.promote import rollback as run

    _print(run(_settings(), cli_actor("custintel rollback"), reason))


models = typer.Typer(no_args_is_help=True, help="Model versions in the BentoML store, the champion and the "
                                                "promotion ledger.")
app.add_typer(models, name="models")


@models.command("list")
def models_list() -> None:
    """Every stored version, newest first, with its run, data version, metric and champion flag."""
    from custintel import registry
    from custintel.paths import DataPaths

    settings = _settings()
    champion, metric = registry.champion_tag(DataPaths(settings.data_dir)), settings.promote.metric
    _print({"champion": champion, "versions": [
        {"tag": v["tag"], "champion": v["tag"] == champion, "created_at": v["created_at"],
         "run_id": v.get("run_id"), "data_version": v.get("data_version"),
         metric: (v.get("metrics") or {}).get(metric), "parent_champion": v.get("parent_champion"),
         "git_commit": v.get("git_commit")} for v in registry.list_versions()]})


@models.command("show")
def models_show(tag: Annotated[str | None, typer.Argument(
        help="Version tag (customer_model:<version>); default the champion.")] = None) -> None:
    """The version's model card and lineage (data revision, Feast registry, git commit, Optuna trial)."""
    from custintel import registry
    from custintel.paths import DataPaths

    settings = _settings()
    tag = tag or registry.champion_tag(DataPaths(settings.data_dir))
    if tag is None:
        raise UserError("No champion yet: pass a version tag (see `custintel models list`).")
    lineage = registry.model_metadata(tag)
    card = registry.model_path(tag) / "model_card.md"
    typer.echo(card.read_text() if card.is_file() else f"# {tag}\n\n(no model card stored with this version)")
    typer.echo("\n## Lineage\n\n```json\n" + json.dumps(lineage, indent=2, default=str) + "\n```")


@models.command("promote")
def models_promote(
    tag: Annotated[str, typer.Argument(help="Version tag to make champion (see `custintel models list`).")],
    reason: Reason = None,
) -> None:
    """Make a named version the champion by hand (skips the gate; recorded in the ledger)."""
    from custintel.registry import cli_actor
    from custintel.steps.promote import promote_by_hand

    _print(promote_by_hand(_settings(), tag, cli_actor(f"custintel models promote {tag}"), reason))


@models.command("rollback")
def models_rollback(reason: Reason = None) -> None:
    """Same as `custintel rollback`: back to the champion before the current one; repeat to go further."""
    rollback(reason)


@models.command("ledger")
def models_ledger(last: Annotated[int | None, typer.Option(help="Only the last N entries.")] = None) -> None:
    """The promotion ledger: every promotion, rejection and rollback, oldest first."""
    from custintel import registry
    from custintel.paths import DataPaths

    entries = registry.ledger_entries(DataPaths(_settings().data_dir))
    _print({"entries": entries[-last:] if last else entries})


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default serve.port).")] = None,
) -> None:
    """Serve the champion model over HTTP with BentoML (Ctrl-C to stop)."""
    from custintel import registry, server
    from custintel.paths import DataPaths

    settings = _settings()
    if registry.champion_tag(DataPaths(settings.data_dir)) is None:
        raise UserError("No champion model to serve yet: run `custintel retrain` first.")
    proc = server.start(_state["params"], settings.serve.host, port or settings.serve.port)
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        server.stop(proc)


@app.command()
def predict(
    customer_ids: Annotated[list[int], typer.Argument(help="Customer ids to score.")],
    url: Annotated[str | None, typer.Option(help="Server URL (default from serve.host/port).")] = None,
) -> None:
    """Ask a running server for predictions."""
    import httpx

    settings = _settings()
    url = url or f"http://{settings.serve.host}:{settings.serve.port}"
    try:
        response = httpx.post(f"{url}/predict", json={"customer_ids": customer_ids}, timeout=30,
                              headers=_auth_headers(settings))
    except httpx.TransportError:
        raise UserError(f"No server answers at {url}; start one with `custintel serve`.") from None
    _print(response.json())


@app.command()
def retrain(
    force: Annotated[bool, typer.Option(help="Recompute features and retrain even if unchanged.")] = False,
    serve_check: Annotated[bool, typer.Option(
        "--serve-check", help="Afterwards start the server, print a served prediction, stop it.")] = False,
) -> None:
    """Run the whole Prefect `retrain` flow (the main job)."""
    settings = _settings()
    from flows.retrain import retrain as flow

    summary = flow(params_path=str(_state["params"]), force=force)
    if serve_check:
        summary["served_prediction"] = _served_prediction(settings)
    _print(summary)
    typer.echo("\nReports:")
    for name, path in summary["reports"].items():
        typer.echo(f"  {name:10s} {path}")


def _auth_headers(settings) -> dict[str, str]:
    """X-API-Key from the environment variable serve.api_key_env names, when it is set."""
    key = os.environ.get(settings.serve.api_key_env)
    return {"X-API-Key": key} if key else {}


def _served_prediction(settings) -> dict:
    import httpx

    from custintel import server

    port = server.free_port()
    log_file = settings.data_dir / "serve-check.log"
    proc = server.start(_state["params"], settings.serve.host, port, log_file=log_file)
    try:
        url = f"http://{settings.serve.host}:{port}"
        server.wait_ready(proc, url)
        return httpx.post(f"{url}/predict", json={"customer_ids": [1, 2, 3, 99999999]}, timeout=30,
                          headers=_auth_headers(settings)).json()
    finally:
        server.stop(proc)


def main() -> None:
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
