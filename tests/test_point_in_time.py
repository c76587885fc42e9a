"""Point-in-time correctness on a hand-made history."""

import threading
from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq
import pytest

from custintel.config import utc_datetime
from custintel.data.generator import generate_chunks, write_tables
from custintel.features import point_in_time
from custintel.features.point_in_time import compute_features, compute_labels
from custintel.features.schema import BASKET, FEATURE_NAMES

UTC = UTC
SNAP = datetime(2025, 3, 1, tzinfo=UTC)


def _ts(*args):
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


@pytest.fixture
def raw_dir(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"customer_id": [1, 2, 3], "signup_ts": [_ts(2025, 1, 1), _ts(2025, 2, 1), _ts(2025, 4, 1)],
                  "country": "DE", "channel": "email", "age_band": "25-34"}
                 ).to_parquet(raw / "customers.parquet")
    orders = [(1, 1, _ts(2025, 1, 10), 10.0), (2, 1, _ts(2025, 2, 20), 30.0),
              (3, 1, _ts(2025, 3, 1), 500.0),  # exactly at the snapshot: not a feature, is a label
              (4, 1, _ts(2025, 4, 15), 70.0), (5, 1, _ts(2025, 7, 1), 1000.0)]  # after the horizon
    pd.DataFrame(orders, columns=["order_id", "customer_id", "order_ts", "amount"]).assign(
        discount=0.0, category="cat_00", n_items=1).to_parquet(raw / "orders.parquet")
    pd.DataFrame({"event_id": [1, 2, 3], "session_id": [1, 1, 2], "customer_id": [1, 1, 1],
                  "event_ts": [_ts(2025, 2, 15), _ts(2025, 2, 15, 0, 5), _ts(2025, 3, 2)],
                  "event_type": ["view", "add_to_cart", "view"]}).to_parquet(raw / "events.parquet")
    pd.DataFrame({"review_id": [1, 2], "order_id": [1, 4], "customer_id": [1, 1],
                  "review_ts": [_ts(2025, 1, 20), _ts(2025, 4, 20)], "rating": [4, 1],
                  "text": ["good", "bad"]}).to_parquet(raw / "reviews.parquet")
    return raw


def test_features_use_only_events_strictly_before_the_snapshot(raw_dir):
    f = compute_features(raw_dir, [SNAP]).set_index("customer_id")
    assert list(f.index) == [1, 2]  # customer 3 signs up after the snapshot
    c1 = f.loc[1]
    assert c1["frequency"] == 2
    assert c1["monetary_mean"] == pytest.approx(20.0)
    assert c1["recency_days"] == pytest.approx(9.0)  # last order Feb 20
    assert c1["spend_90d"] == pytest.approx(40.0)
    assert c1["sessions_30d"] == 1 and c1["cart_adds_30d"] == 1
    assert c1["review_count"] == 1 and c1["mean_rating"] == 4
    c2 = f.loc[2]
    assert c2["frequency"] == 0 and c2["recency_days"] == pytest.approx(28.0)  # days since signup
    # no order lines or products here: every feature but the basket group's, which is absent
    assert list(f.columns[1:]) == [n for n in FEATURE_NAMES if n not in BASKET.features]


def test_planted_future_events_do_not_change_features(raw_dir):
    before = compute_features(raw_dir, [SNAP])
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    planted = orders.iloc[[0]].assign(order_id=99, order_ts=SNAP + pd.Timedelta(seconds=1), amount=1e6)
    pd.concat([orders, planted]).to_parquet(raw_dir / "orders.parquet")
    pd.testing.assert_frame_equal(before, compute_features(raw_dir, [SNAP]))


def test_labels_cover_exactly_the_horizon(raw_dir):
    end = datetime(2025, 12, 31, tzinfo=UTC)
    labels = compute_labels(raw_dir, [SNAP], horizon_days=90, end=end).set_index("customer_id")
    assert labels.loc[1, "spend_horizon"] == pytest.approx(570.0)  # Mar 1 and Apr 15, not Jul 1
    assert labels.loc[1, "churned"] == 0
    assert labels.loc[2, "churned"] == 1 and labels.loc[2, "spend_horizon"] == 0


def test_no_labels_when_horizon_not_observed(raw_dir):
    end = datetime(2025, 4, 1, tzinfo=UTC)
    assert compute_labels(raw_dir, [SNAP], horizon_days=90, end=end).empty


def test_events_roll_up_the_same_in_any_row_order_and_batch_size(tiny_settings, tmp_path, monkeypatch):
    """The events are rolled up a batch at a time, row groups shared by two threads: a (customer,
    session) cut by a batch or row group boundary is joined back, and rows in any order are sorted and
    merged; all give the features of one batch."""
    raw, snaps = _generated(tiny_settings, tmp_path)
    whole = compute_features(raw, snaps)
    events = pd.read_parquet(raw / "events.parquet")
    assert events["session_id"].nunique() > 1000
    monkeypatch.setattr(point_in_time, "_EVENT_BATCH", 97)  # hundreds of boundaries, many inside a session
    pd.testing.assert_frame_equal(compute_features(raw, snaps), whole)
    events.to_parquet(raw / "events.parquet", index=False, row_group_size=1013)
    assert pq.ParquetFile(raw / "events.parquet").num_row_groups > 10
    pd.testing.assert_frame_equal(compute_features(raw, snaps), whole)
    shuffled = events.sample(frac=1.0, random_state=3)
    shuffled.to_parquet(raw / "events.parquet", index=False, row_group_size=1013)
    pd.testing.assert_frame_equal(compute_features(raw, snaps), whole)


def test_a_failing_event_row_group_fails_the_build_without_hanging(tiny_settings, tmp_path, monkeypatch):
    raw, snaps = _generated(tiny_settings, tmp_path)
    events = pd.read_parquet(raw / "events.parquet")
    events.to_parquet(raw / "events.parquet", index=False, row_group_size=997)
    calls, real = [], point_in_time._roll_up

    def roll_up(*args):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk gone")
        return real(*args)

    monkeypatch.setattr(point_in_time, "_roll_up", roll_up)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, compute_features, raw, snaps), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the build hung after a row group failed"
    assert len(outcome) == 1 and isinstance(outcome[0], OSError) and "disk gone" in str(outcome[0])


def _capture(outcome: list, function, *args) -> None:
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - handed to the test
        outcome.append(error)


def _generated(settings, tmp_path):
    """Generated raw tables (settings' customers) and six monthly snapshots to the end of history."""
    raw = tmp_path / "generated"
    write_tables(generate_chunks(settings.data, seed=0), raw)
    end = utc_datetime(settings.data.end_date)
    return raw, [end - pd.Timedelta(days=30 * k) for k in range(6)]
