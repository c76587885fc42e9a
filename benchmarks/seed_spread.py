"""Model quality as mean and spread over seeds, on one data version: each seed re-runs the Optuna
study, the refit and the evaluation (LightGBM's seed too) on the same features and split.

    custintel retrain                                  # once: data, features, Feast
    PYTHONPATH=. python benchmarks/seed_spread.py --seeds 1 2 3 [--params params.yaml]

Prints one JSON line per seed and a final table: mean ± standard deviation per model and metric
(the oracle's scores do not depend on the seed). The Feast training set is loaded once and shared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.seed_table import SeedTable, rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()

    from custintel.config import load_settings
    from custintel.data.versioning import data_version
    from custintel.paths import DataPaths
    from custintel.runtime import configure
    from custintel.steps.evaluate import evaluate
    from custintel.steps.train import load_training_set, train

    base = load_settings(args.params)
    configure(base)
    paths = DataPaths(base.data_dir)
    version = data_version(paths.dvc_repo)
    if version is None:
        raise SystemExit("no data yet: run `custintel retrain` first")
    training_set = load_training_set(base)  # the Feast join once: the same rows for every seed
    results = SeedTable()
    for seed in args.seeds:
        settings = base.model_copy(update={"base": base.base.model_copy(update={"seed": seed})})
        run_dir = paths.runs / f"seed-spread-{seed}"
        train(settings, run_dir, version, training_set)
        metrics = evaluate(settings, run_dir, version)
        models = {"model": metrics["model"], **metrics["baselines"], "oracle": metrics.get("oracle")}
        print(json.dumps({"seed": seed, **{name: rounded(m) for name, m in models.items() if m}}), flush=True)
        for name, m in models.items():
            if m:
                results.add(name, m)
    print(f"\n{len(args.seeds)} seeds {args.seeds}, data version {version[:12]}: mean ± std")
    print(results.markdown())


if __name__ == "__main__":
    main()
