"""Scheduled deployments, defined in code and served by one long-running process:

    custintel schedule            # or: python -m flows.serve [--params params.yaml]

- `daily-monitor`: the `monitor` flow on schedule.monitor_cron; it starts `retrain` when the
  policy in drift.policy says retrain;
- `weekly-retrain`: the `retrain` flow on schedule.retrain_cron.

Both run in this process against the Prefect API (the local ephemeral one under <data_dir>/prefect
by default, or PREFECT_API_URL's server); their tasks carry retries. Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse


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


def serve_all(params_path: str) -> None:
    from custintel.config import load_settings
    from custintel.runtime import configure

    settings = load_settings(params_path)
    configure(settings)
    from prefect import serve

    serve(*deployments(params_path, settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    serve_all(parser.parse_args().params)


if __name__ == "__main__":
    main()
