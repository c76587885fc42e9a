"""Review text features: model load time, embedding throughput (distinct texts/s) and the time the
text step adds to building features for N generated customers.

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/text_features.py --customers 20000 100000

Per size: `text_step_s` is custintel.features.text.review_text_table + writing review_text.parquet
with the model already loaded (embedding each distinct text, sentiment, PCA fit, projection saved),
`text_step_reused_s` the same on a rebuild that reuses the saved projection, and `text_sql_s` what
the text group adds to the DuckDB point-in-time query (all groups minus all but text); each the
fastest of --repeats runs (the machine is shared: the minimum is the least disturbed). Generated
reviews reuse ten phrasings, so the embedding part is tiny there; `texts_per_s` tells what real,
mostly distinct, texts would cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from custintel.config import load_settings
from custintel.data.generator import generate_chunks, write_tables
from custintel.features import text
from custintel.features.point_in_time import compute_features
from custintel.features.schema import GROUPS, TEXT

_OPENINGS = ("Honestly,", "Overall", "For the price", "After two weeks", "As a gift",
             "Compared to my old one")
_BODIES = ("the {n} feels solid and works as described", "the {n} stopped working and support was slow",
           "the {n} is fine but the colour is off", "my {n} arrived broken and the box was crushed",
           "I use the {n} every day and love it", "the {n} is smaller than the photos suggest")
_NOUNS = ("kettle", "backpack", "lamp", "blender", "jacket", "phone case", "desk", "headset")


def distinct_texts(n: int) -> list[str]:
    """n different review-like sentences (10-25 words)."""
    return [f"{_OPENINGS[i % 6]} {_BODIES[(i // 6) % 6].format(n=_NOUNS[(i // 36) % 8])}, order {i}."
            for i in range(n)]


def _time_size(settings, n: int, repeats: int) -> dict:
    snapshots = settings.snapshot_dates()
    without = [g for g in GROUPS if g is not TEXT]
    timings: dict[str, list[float]] = {}

    def timed(name: str, call):
        start = time.perf_counter()
        value = call()
        timings.setdefault(name, []).append(time.perf_counter() - start)
        return value

    with tempfile.TemporaryDirectory() as tmp:
        raw, offline = Path(tmp) / "raw", Path(tmp) / "offline"
        counts = write_tables(generate_chunks(settings.data.model_copy(update={"n_customers": n}),
                                              seed=settings.base.seed), raw)
        reviews = pd.read_parquet(raw / "reviews.parquet", columns=["review_id", "review_ts", "text"])

        def text_step() -> pd.DataFrame:
            table, _ = text.review_text_table(reviews, snapshots[0], projection_dir=offline)
            table.to_parquet(offline / text.REVIEW_TEXT_FILE, index=False)
            return table

        for _ in range(repeats):
            shutil.rmtree(offline, ignore_errors=True)
            table = timed("text_step_s", text_step)  # fits and saves the projection
            timed("text_step_reused_s", text_step)  # finds it saved and reuses it
            timed("with", lambda t=table: compute_features(raw, snapshots, list(GROUPS), review_text=t))
            timed("without", lambda: compute_features(raw, snapshots, without))
    best = {name: round(min(values), 2) for name, values in timings.items()}
    return {"customers": n, "reviews": counts["reviews"], "distinct_texts": int(reviews["text"].nunique()),
            "snapshots": len(snapshots), "text_step_s": best["text_step_s"],
            "text_step_reused_s": best["text_step_reused_s"], "features_all_groups_s": best["with"],
            "features_without_text_s": best["without"],
            "text_sql_s": round(best["with"] - best["without"], 2),
            "load_avg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--texts", type=int, default=1000, help="distinct texts for the throughput figure")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the fastest of this many runs")
    args = parser.parse_args()
    start = time.perf_counter()
    import torch

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    encoder = text.encoder()
    load_s = time.perf_counter() - start
    texts = distinct_texts(args.texts)
    start = time.perf_counter()
    encoder.encode(texts)
    embed_s = time.perf_counter() - start
    result = {"model": text.MODEL_NAME, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "load_avg_before": os.getloadavg()[0], "torch_import_s": round(import_s, 2),
              "model_load_s": round(load_s, 2),
              "distinct_texts": len(texts), "texts_per_s": round(len(texts) / embed_s, 1)}
    settings = load_settings(args.params)
    result["sizes"] = [_time_size(settings, n, args.repeats) for n in args.customers]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
