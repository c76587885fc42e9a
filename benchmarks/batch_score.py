"""Batch scoring throughput at 1M customers: custintel.batch_scoring vs the straightforward path.

Writes a synthetic offline feature table (benchmarks/materialize.py's `write_offline`: every feature
of every group, N customers at each of the last S snapshots), builds a model on it (a randomly
initialised MultiTaskNet of 3 x 128 units, its scaler fitted on the data, K-means segments with
k=6 fitted on a 50k sample, value tiers from the predicted spend) and times, end to end (read the
newest snapshot -> churn, spend, tier, segment, revenue at risk, action -> sorted parquet file):

- `batch`:    custintel.batch_scoring.score_snapshot (what `custintel score-batch` runs);
- `baseline`: the straightforward pandas path (what training's scoring did before): read the whole
  table and filter the newest snapshot, predict the whole frame at once, nearest centroid by
  broadcasting (an n x k x d array), the action looked up per row, sort, write.

The two alternate, --repeats times each, in one process; the outputs are checked to be equal.
Wall seconds and this process's CPU seconds are reported (the second moves less with other load).

    PYTHONPATH=. python benchmarks/batch_score.py --customers 1000000 --snapshots 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.materialize import write_offline  # noqa: E402


def build_model(features: pd.DataFrame, names: list[str], seed: int = 0):
    import torch

    from custintel.batch_scoring import ScoringModel
    from training.network import MultiTaskNet, NetConfig
    from training.predictor import Predictor
    from training.scaler import FeatureScaler
    from training.segments import fit_segmenter
    from training.tiers import fit_tiers

    torch.manual_seed(seed)
    cfg = NetConfig(n_features=len(names), hidden_dim=128, n_layers=3, dropout=0.0)
    sample = features.sample(50_000, random_state=seed).reset_index(drop=True)
    predictor = Predictor(net=MultiTaskNet(cfg).eval(), net_config=cfg,
                          scaler=FeatureScaler(names).fit(sample))
    churn, spend = predictor.predict_arrays(sample)
    segmenter, _ = fit_segmenter(sample, names, seed, 6, (3, 8), None, 0.5, churn, spend)
    tiers = fit_tiers(spend, ("low", "mid", "high"), 1.0, (0.5, 0.8))
    return ScoringModel(predictor, tiers, segmenter, "benchmark:model")


def baseline(features_file: Path, model, playbook: dict, out: Path) -> pd.DataFrame:
    from custintel.batch_scoring import suggested_action
    from custintel.features.schema import ENTITY_KEY, TIMESTAMP

    features = pd.read_parquet(features_file)
    ts = pd.to_datetime(features[TIMESTAMP], utc=True)
    customers = features[ts == ts.max()].reset_index(drop=True)
    churn, spend = model.predictor.predict_arrays(customers)
    seg = model.segmenter
    x = seg.space(customers)
    distances = ((x[:, None, :] - seg.centroids[None, :, :]) ** 2).sum(axis=2)  # n x k x d
    segment_ids = np.asarray(seg.ids)[distances.argmin(axis=1)]
    scores = pd.DataFrame({
        ENTITY_KEY: customers[ENTITY_KEY], TIMESTAMP: customers[TIMESTAMP], "churn_probability": churn,
        "predicted_spend": spend, "value_tier": model.tiers.assign(spend), "segment_id": segment_ids,
        "segment_name": [seg.names[i] for i in segment_ids], "revenue_at_risk": churn * spend})
    scores["action"] = scores["segment_name"].map(lambda n: suggested_action(n, playbook))
    scores = scores.sort_values("revenue_at_risk", ascending=False, ignore_index=True)
    scores["model_version"] = model.tag
    scores.to_parquet(out, index=False)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--snapshots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from custintel.batch_scoring import read_latest_snapshot, score_snapshot
    from custintel.config import DEFAULT_PLAYBOOK
    from custintel.features.schema import ENTITY_KEY, FEATURES
    from custintel.paths import DataPaths

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        rows = write_offline(data_dir, args.customers, args.snapshots)
        features_file = DataPaths(data_dir).features_file
        names = list(FEATURES)
        model = build_model(read_latest_snapshot(features_file, names), names)
        timings: dict[str, list[float]] = {"batch": [], "baseline": []}
        cpu: dict[str, list[float]] = {"batch": [], "baseline": []}
        for _ in range(args.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = score_snapshot(features_file, model, DEFAULT_PLAYBOOK, Path(tmp) / "batch.parquet")
            timings["batch"].append(time.perf_counter() - started)
            cpu["batch"].append(time.process_time() - cpu_started)
            started, cpu_started = time.perf_counter(), time.process_time()
            baseline(features_file, model, DEFAULT_PLAYBOOK, Path(tmp) / "baseline.parquet")
            timings["baseline"].append(time.perf_counter() - started)
            cpu["baseline"].append(time.process_time() - cpu_started)
        ours = pd.read_parquet(Path(tmp) / "batch.parquet").set_index(ENTITY_KEY).sort_index()
        theirs = pd.read_parquet(Path(tmp) / "baseline.parquet").set_index(ENTITY_KEY).sort_index()
        pd.testing.assert_frame_equal(ours, theirs[ours.columns])
    median = {path: statistics.median(seconds) for path, seconds in timings.items()}
    print(json.dumps({
        "customers": args.customers, "offline_rows": rows, "repeats": args.repeats,
        "seconds": {path: [round(s, 3) for s in seconds] for path, seconds in timings.items()},
        "median_customers_per_s": {path: round(args.customers / s) for path, s in median.items()},
        "speedup_vs_baseline": round(median["baseline"] / median["batch"], 2),
        # CPU seconds of this process (all its threads): less sensitive to other work on the machine
        "cpu_seconds": {path: [round(s, 3) for s in seconds] for path, seconds in cpu.items()},
        "median_customers_per_cpu_s": {path: round(args.customers / statistics.median(seconds))
                                       for path, seconds in cpu.items()},
        "torch_threads": torch.get_num_threads(),
        "last_batch_split_s": {k: summary[k] for k in ("read_s", "score_s", "write_s")},
    }, indent=2))


if __name__ == "__main__":
    main()
