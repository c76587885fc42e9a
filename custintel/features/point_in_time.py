"""Point-in-time features and labels per (customer, snapshot), computed with DuckDB.

    custintel features     # writes <data_dir>/offline/customer_features.parquet and labels

Features at a snapshot use only events strictly before it; labels use only events in
[snapshot, snapshot + horizon) and exist only where that window is fully observed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from custintel.features.schema import (
    CHURN_LABEL,
    ENGAGEMENT,
    ENTITY_KEY,
    GROUPS,
    PURCHASE,
    REVIEW_EMB_FEATURES,
    TEXT,
    TIMESTAMP,
    VALUE_LABEL,
    FeatureGroup,
    feature_names,
    groups_for_tables,
)

_CUSTOMER_SNAPSHOTS = """
cs AS (
    SELECT c.customer_id, c.signup_ts, s.snapshot_ts
    FROM customers c JOIN snaps s ON c.signup_ts < s.snapshot_ts
)"""

# The text group reads `review_text` (one row per review with text: its sentiment and projected
# embedding, custintel.features.text) beside `reviews`; reviews without text count in review_count
# and mean_rating only. Means are 0 where a customer has no review (with text) before the snapshot.
_TEXT_MEANS = ",".join(f"\n        avg(rt.{c}) AS {c}" for c in REVIEW_EMB_FEATURES)
_TEXT_SELECTS = ",".join(f"\n    coalesce(rv.{c}, 0)::DOUBLE AS {c}" for c in REVIEW_EMB_FEATURES)

# Per feature group: its CTE (one row per customer and snapshot with activity), how it joins
# onto the customer snapshots, and its select list (zeros where the customer had no activity).
_GROUP_SQL: dict[str, tuple[str, str, str]] = {
    PURCHASE.name: ("""
o AS (
    SELECT cs.customer_id, cs.snapshot_ts,
        count(o.order_id) AS frequency,
        max(o.order_ts) AS last_order_ts,
        coalesce(avg(o.amount), 0) AS monetary_mean,
        coalesce(sum(o.amount) FILTER (WHERE o.order_ts >= cs.snapshot_ts - INTERVAL 90 DAY), 0) AS spend_90d,
        count(o.order_id) FILTER (WHERE o.order_ts >= cs.snapshot_ts - INTERVAL 90 DAY) AS orders_90d
    FROM cs LEFT JOIN orders o
      ON o.customer_id = cs.customer_id AND o.order_ts < cs.snapshot_ts
    GROUP BY cs.customer_id, cs.snapshot_ts
)""", "JOIN o USING (customer_id, snapshot_ts)", """
    date_diff('second', coalesce(o.last_order_ts, cs.signup_ts), cs.snapshot_ts) / 86400.0 AS recency_days,
    o.frequency::DOUBLE AS frequency,
    o.monetary_mean::DOUBLE AS monetary_mean,
    o.spend_90d::DOUBLE AS spend_90d,
    o.orders_90d::DOUBLE AS orders_90d,
    date_diff('second', cs.signup_ts, cs.snapshot_ts) / 86400.0 AS tenure_days"""),
    ENGAGEMENT.name: ("""
e AS (
    SELECT cs.customer_id, cs.snapshot_ts,
        count(DISTINCT e.session_id) AS sessions_30d,
        count(*) FILTER (WHERE e.event_type = 'add_to_cart') AS cart_adds_30d
    FROM cs JOIN events e
      ON e.customer_id = cs.customer_id
     AND e.event_ts < cs.snapshot_ts AND e.event_ts >= cs.snapshot_ts - INTERVAL 30 DAY
    GROUP BY cs.customer_id, cs.snapshot_ts
)""", "LEFT JOIN e USING (customer_id, snapshot_ts)", """
    coalesce(e.sessions_30d, 0)::DOUBLE AS sessions_30d,
    coalesce(e.cart_adds_30d, 0)::DOUBLE AS cart_adds_30d"""),
    TEXT.name: (f"""
rv AS (
    SELECT cs.customer_id, cs.snapshot_ts, count(*) AS review_count, avg(r.rating) AS mean_rating,
        avg(rt.review_sentiment) AS review_sentiment,{_TEXT_MEANS}
    FROM cs JOIN reviews r ON r.customer_id = cs.customer_id AND r.review_ts < cs.snapshot_ts
    LEFT JOIN review_text rt ON rt.review_id = r.review_id
    GROUP BY cs.customer_id, cs.snapshot_ts
)""", "LEFT JOIN rv USING (customer_id, snapshot_ts)", f"""
    coalesce(rv.review_count, 0)::DOUBLE AS review_count,
    coalesce(rv.mean_rating, 0)::DOUBLE AS mean_rating,
    coalesce(rv.review_sentiment, 0)::DOUBLE AS review_sentiment,{_TEXT_SELECTS}"""),
}


def _features_sql(groups: list[FeatureGroup]) -> str:
    ctes = ",".join([_CUSTOMER_SNAPSHOTS, *(_GROUP_SQL[g.name][0] for g in groups)])
    selects = ",".join(_GROUP_SQL[g.name][2] for g in groups)
    joins = "\n".join(_GROUP_SQL[g.name][1] for g in groups)
    return (f"WITH {ctes}\nSELECT cs.customer_id AS {ENTITY_KEY}, cs.snapshot_ts AS {TIMESTAMP},{selects}\n"
            f"FROM cs\n{joins}\nORDER BY {TIMESTAMP}, {ENTITY_KEY}")


_LABELS_SQL = f"""
SELECT cs.customer_id AS {ENTITY_KEY}, cs.snapshot_ts AS {TIMESTAMP},
    (count(o.order_id) = 0)::INTEGER AS {CHURN_LABEL},
    coalesce(sum(o.amount), 0)::DOUBLE AS {VALUE_LABEL}
FROM (SELECT c.customer_id, s.snapshot_ts FROM customers c JOIN snaps s ON c.signup_ts < s.snapshot_ts) cs
LEFT JOIN orders o
  ON o.customer_id = cs.customer_id
 AND o.order_ts >= cs.snapshot_ts AND o.order_ts < cs.snapshot_ts + INTERVAL (?) DAY
GROUP BY cs.customer_id, cs.snapshot_ts
ORDER BY {TIMESTAMP}, {ENTITY_KEY}
"""


def available_tables(raw_dir: Path) -> list[str]:
    """The tables of the feature groups that `raw_dir` holds."""
    wanted = dict.fromkeys(t for group in GROUPS for t in group.tables)
    return [table for table in wanted if (raw_dir / f"{table}.parquet").is_file()]


def _connect(raw_dir: Path, snapshots: list[datetime]):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in available_tables(raw_dir):
        path = raw_dir / f"{table}.parquet"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path.as_posix()}')")
    snaps = pd.DataFrame({"snapshot_ts": pd.to_datetime(snapshots, utc=True)})
    con.register("snaps", snaps)
    return con


def _utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    frame[ENTITY_KEY] = frame[ENTITY_KEY].astype("int64")
    return frame


def compute_features(raw_dir: Path, snapshots: list[datetime],
                     groups: list[FeatureGroup] | None = None,
                     review_text: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (customer signed up before the snapshot, snapshot) with the features of `groups`
    (default: every group whose tables `raw_dir` holds).

    `review_text` is the per-review table of `custintel.features.text.review_text_table` for the
    text group; without it, it is computed here (projection fitted before the first snapshot, not saved)."""
    groups = groups_for_tables(available_tables(raw_dir)) if groups is None else groups
    lacking = [g.name for g in groups if not set(g.tables) <= set(available_tables(raw_dir))]
    if lacking or PURCHASE not in groups:
        raise ValueError(f"{raw_dir} lacks the tables of feature groups {lacking or [PURCHASE.name]}")
    con = _connect(raw_dir, snapshots)
    if TEXT in groups:
        con.register("review_text", _review_text(raw_dir, snapshots) if review_text is None else review_text)
    frame = _utc_frame(con.execute(_features_sql(groups)).df())
    return frame[[ENTITY_KEY, TIMESTAMP, *feature_names(groups)]]


def _review_text(raw_dir: Path, snapshots: list[datetime]) -> pd.DataFrame:
    from custintel.features.text import review_text_table

    reviews = pd.read_parquet(raw_dir / "reviews.parquet", columns=["review_id", "review_ts", "text"])
    return review_text_table(reviews, min(snapshots))[0]


def compute_labels(raw_dir: Path, snapshots: list[datetime], horizon_days: int,
                   end: datetime) -> pd.DataFrame:
    """Churn and spend in [snapshot, snapshot + horizon) for snapshots whose horizon ends by `end`."""
    labelled = [s for s in snapshots if s + timedelta(days=horizon_days) <= end]
    if not labelled:
        return pd.DataFrame(columns=[ENTITY_KEY, TIMESTAMP, CHURN_LABEL, VALUE_LABEL])
    con = _connect(raw_dir, labelled)
    return _utc_frame(con.execute(_LABELS_SQL, [horizon_days]).df())
