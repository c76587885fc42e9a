"""Names of the customer features and labels, grouped by the raw tables they need.

Feast definitions, training and serving all read these. A group whose tables a dataset lacks
(an imported transaction log has no sessions or reviews) is left out everywhere: its features
are absent, never filled with made-up values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class FeatureGroup:
    """One Feast feature view: features of one meaning, computed from `tables`."""

    name: str
    tables: tuple[str, ...]
    features: dict[str, str]  # name -> meaning; order is the model's input order
    description: str


PURCHASE = FeatureGroup("purchase_features", ("customers", "orders"), {
    "recency_days": "days since the last order (days since signup when there is none)",
    "frequency": "orders before the snapshot",
    "monetary_mean": "mean order value before the snapshot (0 without orders)",
    "spend_90d": "spend in the 90 days before the snapshot",
    "orders_90d": "orders in the 90 days before the snapshot",
    "tenure_days": "days since signup",
    "spend_30d": "spend in the 30 days before the snapshot",
    "spend_365d": "spend in the 365 days before the snapshot",
    "orders_30d": "orders in the 30 days before the snapshot",
    "orders_365d": "orders in the 365 days before the snapshot",
    "order_value_std": "population standard deviation of order values (0 with fewer than 2 orders)",
    "order_value_max": "largest order value (0 without orders)",
    "days_since_first_order": "days since the first order (days since signup when there is none)",
    "interpurchase_mean_days": "mean days between consecutive orders; with fewer than 2 orders the "
                               "open interval so far, days_since_first_order",
    "interpurchase_std_days": "population standard deviation of the days between consecutive orders "
                              "(0 with fewer than 3 orders)",
    "orders_trend_30d": "orders in the 30 days before the snapshot minus orders in the 30 days before those",
    "spend_trend_30d": "spend in the 30 days before the snapshot minus spend in the 30 days before those",
}, "Recency, frequency and monetary features from the order history")
BASKET = FeatureGroup("basket_features", ("customers", "orders", "order_lines", "products"), {
    "discount_share": "share of the gross value of lines bought (quantity x unit price) given as discount "
                      "(0 without lines)",
    "return_rate": "share of the lines bought that were returned before the snapshot (0 without lines)",
    "category_entropy": "entropy (nats) of the categories' shares of the gross value of lines bought "
                        "(0 without lines)",
    "top_category_share": "the largest category's share of the gross value of lines bought (0 without lines)",
}, "Basket composition from order lines and products: discounts, returns, category mix")
ENGAGEMENT = FeatureGroup("engagement_features", ("events",), {
    "sessions_7d": "browsing sessions with an event in the 7 days before the snapshot",
    "sessions_30d": "browsing sessions with an event in the 30 days before the snapshot",
    "views_7d": "product views in the 7 days before the snapshot",
    "views_30d": "product views in the 30 days before the snapshot",
    "searches_7d": "searches in the 7 days before the snapshot",
    "searches_30d": "searches in the 30 days before the snapshot",
    "cart_adds_7d": "add-to-cart events in the 7 days before the snapshot",
    "cart_adds_30d": "add-to-cart events in the 30 days before the snapshot",
    "checkouts_7d": "checkout events in the 7 days before the snapshot",
    "checkouts_30d": "checkout events in the 30 days before the snapshot",
    "cart_sessions_90d": "sessions with an add-to-cart in the 90 days before the snapshot",
    "cart_abandon_rate_90d": "share of those sessions without a checkout in the window (0 without any)",
    "sessions_trend_30d": "sessions in the 30 days before the snapshot minus sessions in the 30 days "
                          "before those",
}, "Browsing behaviour from sessions and events")
REVIEW_EMBEDDING_DIMS = 8  # dimensions of the projected review embedding (custintel.features.text)
REVIEW_EMB_FEATURES = tuple(f"review_emb_{i}" for i in range(REVIEW_EMBEDDING_DIMS))
TEXT = FeatureGroup("text_features", ("reviews",), {
    "review_count": "reviews written before the snapshot",
    "mean_rating": "mean review rating (0 without reviews)",
    "review_sentiment": "mean sentiment of the review texts, about -0.5..0.5, > 0 positive "
                        "(0 without reviews with text)",
    **{name: f"mean review embedding, projected dimension {i} "
             "(0 = the average review; 0 without reviews with text)"
       for i, name in enumerate(REVIEW_EMB_FEATURES)},
}, "Review activity, rating, sentiment and wording (MiniLM sentence embedding, projected)")

GROUPS: tuple[FeatureGroup, ...] = (PURCHASE, BASKET, ENGAGEMENT, TEXT)
FEATURES: dict[str, str] = {name: text for group in GROUPS for name, text in group.features.items()}
FEATURE_NAMES: list[str] = list(FEATURES)  # every feature, when every table is present

CHURN_LABEL = "churned"  # 1 = no order in the horizon after the snapshot
VALUE_LABEL = "spend_horizon"  # spend in the horizon after the snapshot
LABELS = (CHURN_LABEL, VALUE_LABEL)


def groups_for_tables(tables: Iterable[str]) -> list[FeatureGroup]:
    """The feature groups whose tables are all present (the purchase group always is)."""
    present = set(tables)
    return [group for group in GROUPS if set(group.tables) <= present]


def groups_by_name(names: Iterable[str]) -> list[FeatureGroup]:
    known = {group.name: group for group in GROUPS}
    return [known[name] for name in names]


def feature_names(groups: Iterable[FeatureGroup]) -> list[str]:
    return [name for group in groups for name in group.features]
