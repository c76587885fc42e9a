"""Every feature's value on a tiny hand-made history around two snapshots, computed by hand (the
numbers below are written out, not produced by the feature code); rows at or after a snapshot
never reach its features; labels start where features stop; imported logs get only what they can.

Snapshots S1 = 2025-03-01 and S2 = 2025-04-01 (UTC midnight). Customers:
1. signed up 2024-01-01; six orders (one exactly at S1), lines in three categories with discounts and
   two returns (one returned after S1 for an order before it), sessions around both snapshots
   (one straddles S1, one straddles S2's 30-day window start), two reviews;
2. signed up 2025-02-01, nothing else: the values "without activity";
3. signed up 2025-03-10 with one order at 12:00 that day and one session: only at S2;
4. signs up after both snapshots: no rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from custintel.features.point_in_time import compute_features, compute_labels
from custintel.features.schema import (
    BASKET,
    ENGAGEMENT,
    FEATURE_NAMES,
    PURCHASE,
    REVIEW_EMB_FEATURES,
    TEXT,
    groups_for_tables,
)

# Model-derived text features (sentence embedding, sentiment) have no hand value: tests/test_text_features.py
# checks them against the model. Every other feature is checked here by hand.
MODEL_DERIVED = {"review_sentiment", *REVIEW_EMB_FEATURES}
HAND_CHECKED = [name for name in FEATURE_NAMES if name not in MODEL_DERIVED]

S1 = datetime(2025, 3, 1, tzinfo=UTC)
S2 = datetime(2025, 4, 1, tzinfo=UTC)


def _ts(*args) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


def _orders() -> pd.DataFrame:
    rows = [  # order_id, customer, time, amount (net of discount), discount amount, category
        (1, 1, _ts(2024, 2, 1), 100.0, 0.0, "A"),
        (2, 1, _ts(2024, 12, 15), 50.0, 0.0, "B"),
        (3, 1, _ts(2025, 2, 10), 30.0, 10.0, "A"),
        (4, 1, _ts(2025, 2, 25), 20.0, 0.0, "C"),
        (5, 1, _ts(2025, 3, 1), 200.0, 0.0, "B"),  # exactly at S1: a label for S1, a feature for S2
        (6, 1, _ts(2025, 3, 20), 60.0, 20.0, "A"),
        (7, 3, _ts(2025, 3, 10, 12), 40.0, 0.0, "C"),
    ]
    columns = ["order_id", "customer_id", "order_ts", "amount", "discount", "category"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(n_items=[1, 1, 2, 1, 1, 1, 1])


def _lines() -> pd.DataFrame:
    rows = [  # line, order, product, quantity, unit price, discount fraction, return time
        (1, 1, 1, 1, 100.0, 0.0, None),
        (2, 2, 2, 1, 50.0, 0.0, _ts(2024, 12, 20)),
        (3, 3, 1, 2, 20.0, 0.25, None),
        (4, 4, 3, 1, 20.0, 0.0, _ts(2025, 3, 5)),  # returned after S1: unknown at S1, known at S2
        (5, 5, 2, 1, 200.0, 0.0, None),
        (6, 6, 1, 1, 80.0, 0.25, None),
        (7, 7, 3, 1, 40.0, 0.0, None),
    ]
    frame = pd.DataFrame(rows, columns=["line_id", "order_id", "product_id", "quantity", "unit_price",
                                        "discount", "return_ts"])
    frame["return_ts"] = pd.to_datetime(frame["return_ts"], utc=True)
    return frame.assign(returned=frame["return_ts"].notna())


def _events() -> pd.DataFrame:
    sessions = {  # session: (customer, [(time, type), ...])
        14: (1, [(_ts(2024, 11, 15), "view")]),  # older than every window
        10: (1, [(_ts(2025, 1, 10, 10), "view"), (_ts(2025, 1, 10, 10, 1), "add_to_cart")]),
        11: (1, [(_ts(2025, 2, 5), "view"), (_ts(2025, 2, 5, 0, 1), "search"),
                 (_ts(2025, 2, 5, 0, 2), "add_to_cart"), (_ts(2025, 2, 5, 0, 3), "checkout")]),
        12: (1, [(_ts(2025, 2, 26), "view"), (_ts(2025, 2, 26, 0, 1), "view"),
                 (_ts(2025, 2, 26, 0, 2), "search"),
                 (_ts(2025, 2, 26, 0, 3), "add_to_cart"),
                 (_ts(2025, 3, 1, 0, 0, 30), "checkout")]),  # after S1: abandoned at S1, not at S2
        15: (1, [(_ts(2025, 3, 1, 23, 59), "view"), (_ts(2025, 3, 2, 0, 1), "view")]),  # S2 - 30 days between
        13: (1, [(_ts(2025, 3, 28), "view"), (_ts(2025, 3, 28, 0, 1), "add_to_cart"),
                 (_ts(2025, 3, 28, 0, 2), "remove_from_cart")]),
        20: (3, [(_ts(2025, 3, 31, 12), "view"), (_ts(2025, 3, 31, 12, 1), "checkout")]),
    }
    rows = [(sid, cust, ts, kind) for sid, (cust, events) in sessions.items() for ts, kind in events]
    frame = pd.DataFrame(rows, columns=["session_id", "customer_id", "event_ts", "event_type"])
    return frame.assign(event_id=range(1, len(frame) + 1))


@pytest.fixture
def raw_dir(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"customer_id": [1, 2, 3, 4],
                  "signup_ts": [_ts(2024, 1, 1), _ts(2025, 2, 1), _ts(2025, 3, 10), _ts(2025, 4, 15)],
                  "country": "DE", "channel": "email", "age_band": "25-34"}
                 ).to_parquet(raw / "customers.parquet")
    pd.DataFrame({"product_id": [1, 2, 3], "category": ["A", "B", "C"], "price": [10.0, 20.0, 30.0],
                  "name": ["a", "b", "c"]}).to_parquet(raw / "products.parquet")
    _orders().to_parquet(raw / "orders.parquet")
    _lines().to_parquet(raw / "order_lines.parquet")
    _events().to_parquet(raw / "events.parquet")
    pd.DataFrame({"review_id": [1, 2], "order_id": [3, 5], "customer_id": [1, 1],
                  "review_ts": [_ts(2025, 1, 20), _ts(2025, 3, 15)], "rating": [4, 2],
                  "text": ["good", "meh"]}).to_parquet(raw / "reviews.parquet")
    return raw


_NOTHING = {  # customer 2: no orders, lines, events or reviews (tenure filled in per snapshot)
    "frequency": 0, "monetary_mean": 0, "spend_90d": 0, "orders_90d": 0, "spend_30d": 0, "spend_365d": 0,
    "orders_30d": 0, "orders_365d": 0, "order_value_std": 0, "order_value_max": 0,
    "interpurchase_std_days": 0,
    "orders_trend_30d": 0, "spend_trend_30d": 0,
    "discount_share": 0, "return_rate": 0, "category_entropy": 0, "top_category_share": 0,
    "sessions_7d": 0, "sessions_30d": 0, "views_7d": 0, "views_30d": 0, "searches_7d": 0, "searches_30d": 0,
    "cart_adds_7d": 0, "cart_adds_30d": 0, "checkouts_7d": 0, "checkouts_30d": 0, "cart_sessions_90d": 0,
    "cart_abandon_rate_90d": 0, "sessions_trend_30d": 0,
    "review_count": 0, "mean_rating": 0,
}

EXPECTED = {
    (1, S1): {
        # orders 1-4: 100, 50, 30, 20 on 2024-02-01, 2024-12-15, 2025-02-10, 2025-02-25
        "recency_days": 4, "frequency": 4, "monetary_mean": 50, "spend_90d": 100, "orders_90d": 3,
        "tenure_days": 425, "spend_30d": 50, "spend_365d": 100, "orders_30d": 2, "orders_365d": 3,
        "order_value_std": 30.822070014844883,  # sqrt((50^2 + 0 + 20^2 + 30^2) / 4) = sqrt(950)
        "order_value_max": 100, "days_since_first_order": 394,
        "interpurchase_mean_days": 130,  # gaps 318, 57, 15
        "interpurchase_std_days": 134.03730823916152,  # sqrt((188^2 + 73^2 + 115^2) / 3) = sqrt(17966)
        "orders_trend_30d": 2, "spend_trend_30d": 50,  # [Jan 30, Mar 1): 2 orders, 50; [Dec 31, Jan 30): none
        # lines 1-4: gross A 100 + 40, B 50, C 20 = 210; discount 10; line 2 returned, line 4 not yet
        "discount_share": 0.047619047619047616, "return_rate": 0.25,
        "category_entropy": 0.8359373644898985,  # -(2/3 ln 2/3 + 5/21 ln 5/21 + 2/21 ln 2/21)
        "top_category_share": 0.6666666666666666,
        # sessions: 10 (Jan 10, cart), 11 (Feb 5, cart + checkout), 12 (Feb 26, cart; checkout after S1)
        "sessions_7d": 1, "sessions_30d": 2, "views_7d": 2, "views_30d": 3, "searches_7d": 1,
        "searches_30d": 2, "cart_adds_7d": 1, "cart_adds_30d": 2, "checkouts_7d": 0, "checkouts_30d": 1,
        "cart_sessions_90d": 3, "cart_abandon_rate_90d": 0.6666666666666666, "sessions_trend_30d": 1,
        "review_count": 1, "mean_rating": 4,
    },
    (1, S2): {
        # orders 1-6: 100, 50, 30, 20, 200 (Mar 1), 60 (Mar 20)
        "recency_days": 12, "frequency": 6, "monetary_mean": 76.66666666666667, "spend_90d": 310,
        "orders_90d": 4, "tenure_days": 456, "spend_30d": 60, "spend_365d": 360, "orders_30d": 1,
        "orders_365d": 5, "order_value_std": 60.73622386096199, "order_value_max": 200,
        "days_since_first_order": 425,
        "interpurchase_mean_days": 82.6,  # gaps 318, 57, 15, 4, 19
        "interpurchase_std_days": 119.0472175231324,
        "orders_trend_30d": -2, "spend_trend_30d": -190,  # [Mar 2, Apr 1): 60; [Jan 31, Mar 2): 30 + 20 + 200
        # lines 1-6: gross A 100 + 40 + 80, B 50 + 200, C 20 = 490; discount 10 + 20; lines 2 and 4 returned
        "discount_share": 0.061224489795918366, "return_rate": 0.3333333333333333,
        "category_entropy": 0.8334300132798539, "top_category_share": 0.5102040816326531,
        # in [Mar 2, Apr 1): 13 (Mar 28, cart, no checkout) and 15 (second view Mar 2 00:01);
        # in [Jan 31, Mar 2): 11, 12, 15; carts in 90 days: 10 (abandoned), 11, 12, 13 (abandoned)
        "sessions_7d": 1, "sessions_30d": 2, "views_7d": 1, "views_30d": 2, "searches_7d": 0,
        "searches_30d": 0, "cart_adds_7d": 1, "cart_adds_30d": 1, "checkouts_7d": 0, "checkouts_30d": 0,
        "cart_sessions_90d": 4, "cart_abandon_rate_90d": 0.5, "sessions_trend_30d": -1,
        "review_count": 2, "mean_rating": 3,
    },
    (2, S1): {**_NOTHING, "recency_days": 28, "tenure_days": 28, "days_since_first_order": 28,
              "interpurchase_mean_days": 28},
    (2, S2): {**_NOTHING, "recency_days": 59, "tenure_days": 59, "days_since_first_order": 59,
              "interpurchase_mean_days": 59},
    (3, S2): {
        **_NOTHING, "recency_days": 21.5, "tenure_days": 22, "frequency": 1, "monetary_mean": 40,
        "spend_90d": 40, "orders_90d": 1, "spend_30d": 40, "spend_365d": 40, "orders_30d": 1,
        "orders_365d": 1,
        "order_value_max": 40, "days_since_first_order": 21.5,
        "interpurchase_mean_days": 21.5,  # one order: the open interval since it
        "orders_trend_30d": 1, "spend_trend_30d": 40,
        "top_category_share": 1,  # one category: entropy 0
        "sessions_7d": 1, "sessions_30d": 1, "views_7d": 1, "views_30d": 1, "checkouts_7d": 1,
        "checkouts_30d": 1, "sessions_trend_30d": 1,  # no add-to-cart: abandonment rate 0
    },
}


def test_every_feature_has_its_hand_computed_value(raw_dir):
    features = compute_features(raw_dir, [S1, S2])
    assert list(features.columns) == ["customer_id", "event_timestamp", *FEATURE_NAMES]
    got = features.set_index(["customer_id", "event_timestamp"])
    assert sorted(got.index) == sorted((c, pd.Timestamp(s)) for c, s in EXPECTED)  # 3 before S2, none is 4
    for (customer, snap), expected in EXPECTED.items():
        assert set(expected) == set(HAND_CHECKED)
        row = got.loc[(customer, pd.Timestamp(snap))]
        for name in HAND_CHECKED:
            assert row[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9), (customer, snap, name)


def _plant_future_rows(raw) -> None:
    """Rows at or after S1 that would change S1's features if they leaked: an order (with a line)
    at S1, a return at S1 of a line bought before it, events that check out abandoned carts, a review."""
    orders = pd.read_parquet(raw / "orders.parquet")
    planted = pd.DataFrame([(99, 1, pd.Timestamp(S1), 1e6, 5e5, "B", 9),
                            (98, 2, pd.Timestamp(S1), 7.0, 0.0, "A", 1)], columns=list(orders.columns))
    pd.concat([orders, planted]).to_parquet(raw / "orders.parquet")
    lines = pd.read_parquet(raw / "order_lines.parquet")
    lines.loc[lines["line_id"] == 1, "returned"] = True
    lines.loc[lines["line_id"] == 1, "return_ts"] = pd.Timestamp(S1)
    extra = pd.DataFrame([(99, 99, 2, 9, 2e5, 0.5, pd.Timestamp(S1) + pd.Timedelta(days=2), True),
                          (98, 98, 1, 1, 7.0, 0.0, pd.NaT, False)], columns=list(lines.columns))
    pd.concat([lines, extra]).to_parquet(raw / "order_lines.parquet")
    events = pd.read_parquet(raw / "events.parquet")
    future = pd.DataFrame({"event_id": [901, 902, 903, 904], "session_id": [10, 12, 77, 78],
                           "customer_id": [1, 1, 1, 2],
                           "event_type": ["checkout", "checkout", "search", "view"],
                           "event_ts": [pd.Timestamp(S1), pd.Timestamp(S1) + pd.Timedelta(seconds=1),
                                        pd.Timestamp(S1) + pd.Timedelta(hours=1), pd.Timestamp(S1)]})
    pd.concat([events, future[events.columns]]).to_parquet(raw / "events.parquet")
    reviews = pd.read_parquet(raw / "reviews.parquet")
    pd.concat([reviews, reviews.iloc[[0]].assign(review_id=9, review_ts=pd.Timestamp(S1), rating=1)]
              ).to_parquet(raw / "reviews.parquet")


def test_rows_at_or_after_the_snapshot_change_no_feature(raw_dir):
    before = compute_features(raw_dir, [S1])
    _plant_future_rows(raw_dir)
    after = compute_features(raw_dir, [S1])
    pd.testing.assert_frame_equal(before, after)
    # the planted rows are real and do show up at the next snapshot
    at_s2 = compute_features(raw_dir, [S2]).set_index("customer_id")
    assert at_s2.loc[1, "frequency"] == 7 and at_s2.loc[1, "return_rate"] == pytest.approx(4 / 7)
    assert at_s2.loc[2, "frequency"] == 1


def test_labels_start_exactly_where_features_stop(raw_dir):
    features = compute_features(raw_dir, [S1]).set_index("customer_id")
    labels = compute_labels(raw_dir, [S1], horizon_days=30, end=S2).set_index("customer_id")
    # the order at S1 (200) is in the label, not in any feature; the label's horizon [S1, S1 + 30 days)
    # holds orders 5 (Mar 1) and 6 (Mar 20); the features' orders all lie before S1
    assert labels.loc[1, "spend_horizon"] == pytest.approx(260.0) and labels.loc[1, "churned"] == 0
    assert features.loc[1, "frequency"] == 4 and features.loc[1, "order_value_max"] == pytest.approx(100.0)
    assert labels.loc[2, "churned"] == 1


def test_groups_follow_the_tables(raw_dir):
    every = ["customers", "orders", "order_lines", "products", "events", "reviews"]
    assert groups_for_tables(every) == [PURCHASE, BASKET, ENGAGEMENT, TEXT]
    assert groups_for_tables(["customers", "orders"]) == [PURCHASE]
    assert groups_for_tables(["customers", "orders", "order_lines", "events"]) == [PURCHASE, ENGAGEMENT]
    (raw_dir / "products.parquet").unlink()  # lines without their products: no basket features
    features = compute_features(raw_dir, [S1])
    assert not set(BASKET.features) & set(features.columns)
    assert set(ENGAGEMENT.features) <= set(features.columns)
