"""Point-in-time features and labels per (customer, snapshot), computed with DuckDB.

    custintel features     # writes <data_dir>/offline/customer_features.parquet and labels

Features at a snapshot use only events strictly before it; labels use only events in
[snapshot, snapshot + horizon) and exist only where that window is fully observed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from custintel.features.schema import (
    BASKET,
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

# Each table is first rolled up per customer and *segment*: the time between two consecutive
# cuts, where the cuts are every snapshot and every window start (snapshot - n days) a group uses.
# A segment lies wholly inside or wholly outside each window of each snapshot. A nested CASE
# (a binary search over the few cuts) gives each row its segment number, the rolled-up rows
# (about one per order or session) are hash-joined on that number to `<g>_windows`, a small table
# of (segment, snapshot it lies before, which of the snapshot's windows hold it), and summed per
# customer and snapshot. No range join of customers x snapshots with raw rows, and no per-row
# timestamptz arithmetic (slow in DuckDB: it goes through its calendar).
@dataclass(frozen=True)
class _Segments:
    cuts: list[pd.Timestamp]  # sorted; segment 0 is before cuts[0], segment k is [cuts[k-1], cuts[k])
    windows: pd.DataFrame  # seg, snapshot_ts, in_<n>d for each window, in_prev_30d (with 30 and 60)

    def of(self, column: str) -> str:
        """SQL for the segment number of the (non-null) timestamp `column`."""
        def search(lo: int, hi: int) -> str:  # the segment is one of lo..hi
            if lo == hi:
                return str(lo)
            mid = (lo + hi + 1) // 2
            cut = self.cuts[mid - 1].strftime("%Y-%m-%d %H:%M:%S.%f")
            return f"CASE WHEN {column} < TIMESTAMPTZ '{cut}+00' THEN {search(lo, mid - 1)} " \
                   f"ELSE {search(mid, hi)} END"
        return search(0, len(self.cuts))


def _segments(snapshots: list[datetime], days: tuple[int, ...]) -> _Segments:
    snaps = sorted(set(pd.to_datetime(snapshots, utc=True)))
    cuts = sorted({s - pd.Timedelta(days=d) for s in snaps for d in (0, *days)})
    windows = pd.DataFrame([(seg, s) for s in snaps for seg in range(cuts.index(s) + 1)],
                           columns=["seg", "snapshot_ts"])  # the segments that end by each snapshot
    start = pd.DatetimeIndex([pd.NaT, *cuts], tz="UTC")[windows["seg"].to_numpy()]
    age = pd.DatetimeIndex(windows["snapshot_ts"]) - start  # NaT for segment 0, which starts at -infinity
    for d in days:
        windows[f"in_{d}d"] = age <= pd.Timedelta(days=d)
    if {30, 60} <= set(days):
        windows["in_prev_30d"] = (age > pd.Timedelta(days=30)) & (age <= pd.Timedelta(days=60))
    windows["seg"] = windows["seg"].astype("int32")
    return _Segments(cuts, windows)


def _days_between(earlier: str, later: str) -> str:
    """Days from `earlier` to `later`, fractional (epoch arithmetic, not timestamptz functions)."""
    return f"(epoch({later}) - epoch({earlier})) / 86400.0"


# The windows each group uses, in days before the snapshot (its segments' cuts).
_GROUP_WINDOWS: dict[str, tuple[int, ...]] = {
    PURCHASE.name: (30, 60, 90, 365),
    BASKET.name: (),
    ENGAGEMENT.name: (7, 30, 60, 90),
}


def _purchase_ctes(seg: _Segments) -> str:
    return f"""
p_orders AS (  -- each order with its segment and the days since the customer's previous order
    SELECT customer_id, {seg.of("order_ts")} AS seg, order_ts, amount,
        {_days_between("lag(order_ts) OVER w", "order_ts")} AS gap
    FROM orders
    WINDOW w AS (PARTITION BY customer_id ORDER BY order_ts, order_id)
),
p_seg AS (
    SELECT customer_id, seg, count(*) AS n, sum(amount) AS spend, sum(amount * amount) AS spend2,
        max(amount) AS max_amount, min(order_ts) AS first_ts, max(order_ts) AS last_ts,
        count(gap) AS n_gaps, sum(gap) AS gaps, sum(gap * gap) AS gaps2
    FROM p_orders GROUP BY customer_id, seg
),
p AS (
    SELECT p_seg.customer_id, w.snapshot_ts,
        sum(n) AS n, sum(spend) AS spend, sum(spend2) AS spend2, max(max_amount) AS max_amount,
        min(first_ts) AS first_ts, max(last_ts) AS last_ts,
        sum(n_gaps) AS n_gaps, sum(gaps) AS gaps, sum(gaps2) AS gaps2,
        coalesce(sum(spend) FILTER (WHERE w.in_30d), 0) AS spend_30d,
        coalesce(sum(spend) FILTER (WHERE w.in_prev_30d), 0) AS spend_prev_30d,
        coalesce(sum(spend) FILTER (WHERE w.in_90d), 0) AS spend_90d,
        coalesce(sum(spend) FILTER (WHERE w.in_365d), 0) AS spend_365d,
        coalesce(sum(n) FILTER (WHERE w.in_30d), 0) AS orders_30d,
        coalesce(sum(n) FILTER (WHERE w.in_prev_30d), 0) AS orders_prev_30d,
        coalesce(sum(n) FILTER (WHERE w.in_90d), 0) AS orders_90d,
        coalesce(sum(n) FILTER (WHERE w.in_365d), 0) AS orders_365d
    FROM p_seg JOIN purchase_features_windows w USING (seg)
    GROUP BY p_seg.customer_id, w.snapshot_ts
)"""


def _basket_ctes(seg: _Segments) -> str:
    return f"""
b_lines AS (  -- each line with its order's customer, segment, category; a return is known from
              -- max(order_ts, return_ts) on (ret_seg: null when not returned)
    SELECT o.customer_id, {seg.of("o.order_ts")} AS seg,
        CASE WHEN l.return_ts IS NOT NULL THEN {seg.of("greatest(o.order_ts, l.return_ts)")} END AS ret_seg,
        pr.category, l.quantity * l.unit_price AS gross, l.quantity * l.unit_price * l.discount AS discount
    FROM order_lines l JOIN orders o USING (order_id) JOIN products pr USING (product_id)
),
b_seg AS (
    SELECT customer_id, category, seg, count(*) AS n_lines, sum(gross) AS gross, sum(discount) AS discount
    FROM b_lines GROUP BY customer_id, category, seg
),
b_cat AS (
    SELECT b_seg.customer_id, w.snapshot_ts, b_seg.category,
        sum(n_lines) AS n_lines, sum(gross) AS gross, sum(discount) AS discount
    FROM b_seg JOIN basket_features_windows w USING (seg)
    GROUP BY b_seg.customer_id, w.snapshot_ts, b_seg.category
),
b_buy AS (
    SELECT customer_id, snapshot_ts, sum(n_lines) AS n_lines, sum(gross) AS gross,
        sum(discount) AS discount, max(gross) AS top_gross,
        sum(gross * ln(gross)) FILTER (WHERE gross > 0) AS gross_ln_gross
    FROM b_cat GROUP BY customer_id, snapshot_ts
),
b_ret_seg AS (
    SELECT customer_id, ret_seg AS seg, count(*) AS n_returned
    FROM b_lines WHERE ret_seg IS NOT NULL GROUP BY customer_id, ret_seg
),
b_ret AS (
    SELECT b_ret_seg.customer_id, w.snapshot_ts, sum(n_returned) AS n_returned
    FROM b_ret_seg JOIN basket_features_windows w USING (seg)
    GROUP BY b_ret_seg.customer_id, w.snapshot_ts
)"""


def _engagement_ctes(seg: _Segments) -> str:
    return f"""
e_seg AS (  -- per customer, session and segment: events of each type
    SELECT customer_id, session_id, {seg.of("event_ts")} AS seg,
        count(*) FILTER (WHERE event_type = 'view') AS views,
        count(*) FILTER (WHERE event_type = 'search') AS searches,
        count(*) FILTER (WHERE event_type = 'add_to_cart') AS cart_adds,
        count(*) FILTER (WHERE event_type = 'checkout') AS checkouts
    FROM events
    WHERE event_ts >= TIMESTAMPTZ '{seg.cuts[0].strftime("%Y-%m-%d %H:%M:%S.%f")}+00'
    GROUP BY customer_id, session_id, seg
),
e_sess AS (  -- per customer, snapshot and session with an event in the 90 days before the snapshot
    SELECT e_seg.customer_id, w.snapshot_ts, e_seg.session_id,
        bool_or(w.in_7d) AS in_7d, bool_or(w.in_30d) AS in_30d, bool_or(w.in_prev_30d) AS in_prev_30d,
        coalesce(sum(views) FILTER (WHERE w.in_7d), 0) AS views_7d,
        coalesce(sum(views) FILTER (WHERE w.in_30d), 0) AS views_30d,
        coalesce(sum(searches) FILTER (WHERE w.in_7d), 0) AS searches_7d,
        coalesce(sum(searches) FILTER (WHERE w.in_30d), 0) AS searches_30d,
        coalesce(sum(cart_adds) FILTER (WHERE w.in_7d), 0) AS cart_adds_7d,
        coalesce(sum(cart_adds) FILTER (WHERE w.in_30d), 0) AS cart_adds_30d,
        coalesce(sum(checkouts) FILTER (WHERE w.in_7d), 0) AS checkouts_7d,
        coalesce(sum(checkouts) FILTER (WHERE w.in_30d), 0) AS checkouts_30d,
        sum(cart_adds) > 0 AS carted, sum(checkouts) > 0 AS checked_out
    FROM e_seg JOIN engagement_features_windows w USING (seg)
    WHERE w.in_90d
    GROUP BY e_seg.customer_id, w.snapshot_ts, e_seg.session_id
),
e AS (
    SELECT customer_id, snapshot_ts,
        count(*) FILTER (WHERE in_7d) AS sessions_7d, count(*) FILTER (WHERE in_30d) AS sessions_30d,
        count(*) FILTER (WHERE in_prev_30d) AS sessions_prev_30d,
        sum(views_7d) AS views_7d, sum(views_30d) AS views_30d,
        sum(searches_7d) AS searches_7d, sum(searches_30d) AS searches_30d,
        sum(cart_adds_7d) AS cart_adds_7d, sum(cart_adds_30d) AS cart_adds_30d,
        sum(checkouts_7d) AS checkouts_7d, sum(checkouts_30d) AS checkouts_30d,
        count(*) FILTER (WHERE carted) AS cart_sessions_90d,
        count(*) FILTER (WHERE carted AND NOT checked_out) AS abandoned_90d
    FROM e_sess GROUP BY customer_id, snapshot_ts
)"""


# Per feature group: its CTEs (one row per customer and snapshot with activity; a function of the
# group's segments where it uses them), how it joins onto the customer snapshots, and its select
# list (the documented values where the customer had no activity).
# The text group reads `review_text` (one row per review with text: its sentiment and projected
# embedding, custintel.features.text) beside `reviews`; reviews without text count in review_count
# and mean_rating only. Means are 0 where a customer has no review (with text) before the snapshot.
_TEXT_MEANS = ",".join(f"\n        avg(rt.{c}) AS {c}" for c in REVIEW_EMB_FEATURES)
_TEXT_SELECTS = ",".join(f"\n    coalesce(rv.{c}, 0)::DOUBLE AS {c}" for c in REVIEW_EMB_FEATURES)

_GROUP_SQL: dict[str, tuple[str | Callable[[_Segments], str], str, str]] = {
    PURCHASE.name: (_purchase_ctes, "LEFT JOIN p USING (customer_id, snapshot_ts)", f"""
    {_days_between("coalesce(p.last_ts, cs.signup_ts)", "cs.snapshot_ts")} AS recency_days,
    coalesce(p.n, 0)::DOUBLE AS frequency,
    coalesce(p.spend / p.n, 0)::DOUBLE AS monetary_mean,
    coalesce(p.spend_90d, 0)::DOUBLE AS spend_90d,
    coalesce(p.orders_90d, 0)::DOUBLE AS orders_90d,
    {_days_between("cs.signup_ts", "cs.snapshot_ts")} AS tenure_days,
    coalesce(p.spend_30d, 0)::DOUBLE AS spend_30d,
    coalesce(p.spend_365d, 0)::DOUBLE AS spend_365d,
    coalesce(p.orders_30d, 0)::DOUBLE AS orders_30d,
    coalesce(p.orders_365d, 0)::DOUBLE AS orders_365d,
    coalesce(sqrt(greatest(p.spend2 / p.n - (p.spend / p.n) ** 2, 0)), 0)::DOUBLE AS order_value_std,
    coalesce(p.max_amount, 0)::DOUBLE AS order_value_max,
    {_days_between("coalesce(p.first_ts, cs.signup_ts)", "cs.snapshot_ts")} AS days_since_first_order,
    CASE WHEN p.n_gaps > 0 THEN p.gaps / p.n_gaps
         ELSE {_days_between("coalesce(p.first_ts, cs.signup_ts)", "cs.snapshot_ts")}
    END::DOUBLE AS interpurchase_mean_days,
    CASE WHEN p.n_gaps > 0 THEN sqrt(greatest(p.gaps2 / p.n_gaps - (p.gaps / p.n_gaps) ** 2, 0))
         ELSE 0 END::DOUBLE AS interpurchase_std_days,
    coalesce(p.orders_30d - p.orders_prev_30d, 0)::DOUBLE AS orders_trend_30d,
    coalesce(p.spend_30d - p.spend_prev_30d, 0)::DOUBLE AS spend_trend_30d"""),
    BASKET.name: (_basket_ctes, "LEFT JOIN b_buy USING (customer_id, snapshot_ts)\n"
                                "LEFT JOIN b_ret USING (customer_id, snapshot_ts)",
        """
    CASE WHEN b_buy.gross > 0 THEN b_buy.discount / b_buy.gross ELSE 0 END::DOUBLE AS discount_share,
    CASE WHEN b_buy.n_lines > 0 THEN coalesce(b_ret.n_returned, 0) / b_buy.n_lines
         ELSE 0 END::DOUBLE AS return_rate,
    CASE WHEN b_buy.gross > 0  -- -sum(p ln p) with p = g / G is ln G - sum(g ln g) / G
         THEN greatest(ln(b_buy.gross) - coalesce(b_buy.gross_ln_gross, 0) / b_buy.gross, 0)
         ELSE 0 END::DOUBLE AS category_entropy,
    CASE WHEN b_buy.gross > 0 THEN b_buy.top_gross / b_buy.gross ELSE 0 END::DOUBLE AS top_category_share"""),
    ENGAGEMENT.name: (_engagement_ctes, "LEFT JOIN e USING (customer_id, snapshot_ts)", """
    coalesce(e.sessions_7d, 0)::DOUBLE AS sessions_7d,
    coalesce(e.sessions_30d, 0)::DOUBLE AS sessions_30d,
    coalesce(e.views_7d, 0)::DOUBLE AS views_7d,
    coalesce(e.views_30d, 0)::DOUBLE AS views_30d,
    coalesce(e.searches_7d, 0)::DOUBLE AS searches_7d,
    coalesce(e.searches_30d, 0)::DOUBLE AS searches_30d,
    coalesce(e.cart_adds_7d, 0)::DOUBLE AS cart_adds_7d,
    coalesce(e.cart_adds_30d, 0)::DOUBLE AS cart_adds_30d,
    coalesce(e.checkouts_7d, 0)::DOUBLE AS checkouts_7d,
    coalesce(e.checkouts_30d, 0)::DOUBLE AS checkouts_30d,
    coalesce(e.cart_sessions_90d, 0)::DOUBLE AS cart_sessions_90d,
    CASE WHEN e.cart_sessions_90d > 0 THEN e.abandoned_90d / e.cart_sessions_90d
         ELSE 0 END::DOUBLE AS cart_abandon_rate_90d,
    coalesce(e.sessions_30d - e.sessions_prev_30d, 0)::DOUBLE AS sessions_trend_30d"""),
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


def _features_sql(groups: list[FeatureGroup], segments: dict[str, _Segments]) -> str:
    ctes = [_GROUP_SQL[g.name][0] for g in groups]
    ctes = ",".join([_CUSTOMER_SNAPSHOTS, *(c(segments[g.name]) if callable(c) else c
                                            for g, c in zip(groups, ctes, strict=True))])
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
    con.register("snaps", pd.DataFrame({"snapshot_ts": pd.to_datetime(snapshots, utc=True)}))
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
    segments = {name: _segments(snapshots, days) for name, days in _GROUP_WINDOWS.items()}
    for name, seg in segments.items():
        con.register(f"{name}_windows", seg.windows)
    if TEXT in groups:
        con.register("review_text", _review_text(raw_dir, snapshots) if review_text is None else review_text)
    frame = _utc_frame(con.execute(_features_sql(groups, segments)).df())
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
