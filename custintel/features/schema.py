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
}, "Recency, frequency and monetary features from the order history")
ENGAGEMENT = FeatureGroup("engagement_features", ("events",), {
    "sessions_30d": "browsing sessions in the 30 days before the snapshot",
    "cart_adds_30d": "add-to-cart events in the 30 days before the snapshot",
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

GROUPS: tuple[FeatureGroup, ...] = (PURCHASE, ENGAGEMENT, TEXT)
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
