"""Batch scoring throughput at 1M customers: `custintel score-batch` vs the previous implementation and
the straightforward pandas path, with the floors (decoding the snapshot, the network alone).

Writes a synthetic offline feature table (benchmarks/materialize.py's `write_offline`: every feature
of every group, N customers at each of the last S snapshots, row groups of 200k rows), builds a model
on it (a randomly initialised MultiTaskNet of 3 x 128 units, its scaler fitted on the data, K-means
segments with k=6 fitted on a 50k sample, value tiers from the predicted spend), saves it, and times
in a fresh child process per run, end to end (read the newest snapshot -> churn, spend, tier, segment,
revenue at risk, action -> sorted parquet file):

- `batch`:    custintel.batch_scoring.score_snapshot (what `custintel score-batch` runs: streaming
  record batches, block transform, worker threads);
- `previous`: the implementation before it (read the snapshot into pandas, `score_customers` in
  65,536-row chunks, pandas `to_parquet`), still what training uses for its own scores;
- `baseline`: the straightforward pandas path: read the whole table and filter the newest snapshot,
  predict the whole frame at once, nearest centroid by broadcasting (an n x k x d array), the action
  looked up per row, sort, write;
- floors: `read_only` (decode the snapshot's key, timestamp and feature columns, as `batch` does, and
  nothing else) and `net_only` (the network's forward pass on as many ready float32 rows, in the same
  blocks, one thread).

The paths alternate, --repeats times each; each child reports its wall and CPU seconds (all its
threads) for the path alone, its peak RSS (VmHWM, includes the ~0.4 GB of imports) and the load
average. The outputs of the three scoring paths are checked to be equal.

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


PATHS = ("batch", "previous", "baseline", "read_only", "net_only")


def run_path(path: str, data_dir: Path, model_dir: Path, out: Path) -> None:
    """One timed run of `path` in this (fresh) process; prints a JSON line."""
    import os

    import torch

    from benchmarks.peak_memory import peak_rss_mb
    from custintel.batch_scoring import ScoringModel, read_latest_snapshot, score_customers, score_snapshot
    from custintel.config import DEFAULT_PLAYBOOK
    from custintel.paths import DataPaths
    from custintel.snapshot_batches import NewestSnapshot
    from custintel.snapshot_scoring import BLOCK_ROWS, feature_columns
    from training.predictor import Predictor
    from training.segments import Segmenter
    from training.tiers import ValueTiers

    predictor = Predictor.load(model_dir)
    if path in ("batch", "net_only"):  # as `custintel score-batch` loads it (ScoringModel.load)
        predictor.freeze()
    model = ScoringModel(predictor, ValueTiers.load(model_dir), Segmenter.load(model_dir), "benchmark:model")
    features_file = DataPaths(data_dir).features_file
    net_input = None
    if path == "net_only":  # as many rows as the newest snapshot has
        rows = NewestSnapshot.open(features_file, feature_columns(model)).rows_bound
        net_input = torch.randn(rows, len(model.predictor.feature_names))
    started, cpu_started = time.perf_counter(), time.process_time()
    if path == "batch":
        score_snapshot(features_file, model, DEFAULT_PLAYBOOK, out)
    elif path == "previous":
        customers = read_latest_snapshot(features_file, model.predictor.feature_names)
        scores = score_customers(customers, model, DEFAULT_PLAYBOOK)
        scores["model_version"] = model.tag
        scores.to_parquet(out, index=False)
    elif path == "baseline":
        baseline(features_file, model, DEFAULT_PLAYBOOK, out)
    elif path == "read_only":
        columns = feature_columns(model)
        snapshot = NewestSnapshot.open(features_file, columns)
        for batch in snapshot.batches(columns):
            [batch.column(j).to_numpy(zero_copy_only=False) for j in range(batch.num_columns)]
    else:
        torch.set_num_threads(1)
        for start in range(0, len(net_input), BLOCK_ROWS):
            model.predictor.predict_scaled(net_input[start:start + BLOCK_ROWS])
    print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started,
                      "peak_rss_mb": round(peak_rss_mb()), "load_1min": os.getloadavg()[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--snapshots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("PATH", "DATA_DIR", "MODEL_DIR", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, data_dir, model_dir, out = args.child
        run_path(path, Path(data_dir), Path(model_dir), Path(out))
        return

    import subprocess

    from custintel.batch_scoring import read_latest_snapshot
    from custintel.features.schema import ENTITY_KEY, FEATURES
    from custintel.paths import DataPaths

    with tempfile.TemporaryDirectory() as tmp:
        data_dir, model_dir = Path(tmp) / "data", Path(tmp) / "model"
        rows = write_offline(data_dir, args.customers, args.snapshots)
        names = list(FEATURES)
        model = build_model(read_latest_snapshot(DataPaths(data_dir).features_file, names), names)
        model.predictor.save(model_dir)
        model.tiers.save(model_dir)
        model.segmenter.save(model_dir)
        runs: dict[str, list[dict]] = {path: [] for path in PATHS}
        for _ in range(args.repeats):
            for path in PATHS:
                child = [sys.executable, __file__, "--child", path, str(data_dir), str(model_dir),
                         str(Path(tmp) / f"{path}.parquet")]
                proc = subprocess.run(child, capture_output=True, text=True, cwd=ROOT, check=True)
                runs[path].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(path, runs[path][-1], file=sys.stderr, flush=True)
        written = {path: pd.read_parquet(Path(tmp) / f"{path}.parquet").set_index(ENTITY_KEY).sort_index()
                   for path in ("batch", "previous", "baseline")}
        for path in ("previous", "baseline"):
            pd.testing.assert_frame_equal(written["batch"], written[path][written["batch"].columns])

    def median(path: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[path])

    print(json.dumps({
        "customers": args.customers, "offline_rows": rows, "repeats": args.repeats,
        "median_wall_s": {path: round(median(path, "wall_s"), 2) for path in PATHS},
        "median_customers_per_s": {path: round(args.customers / median(path, "wall_s")) for path in PATHS},
        # CPU seconds of the child (all its threads): moves less with other load than wall time
        "median_cpu_s_per_1M": {path: round(median(path, "cpu_s") * 1e6 / args.customers, 2)
                                for path in PATHS},
        "speedup_vs_baseline": {path: round(median("baseline", "wall_s") / median(path, "wall_s"), 2)
                                for path in ("batch", "previous")},
        "cpu_ratio_vs_baseline": {path: round(median("baseline", "cpu_s") / median(path, "cpu_s"), 2)
                                  for path in ("batch", "previous")},
        "median_peak_rss_mb": {path: median(path, "peak_rss_mb") for path in PATHS},
        "load_1min": {path: [run["load_1min"] for run in runs[path]] for path in PATHS},
        "outputs_equal": True,
    }, indent=2))


if __name__ == "__main__":
    main()
