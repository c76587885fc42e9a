"""Names of the customer features and labels. Feast definitions, training and serving all read these."""

from __future__ import annotations

ENTITY_KEY = "customer_id"
TIMESTAMP = "event_timestamp"

# name -> meaning; order is the model's input order.
FEATURES: dict[str, str] = {
    "recency_days": "days since the last order (days since signup when there is none)",
    "frequency": "orders before the snapshot",
    "monetary_mean": "mean order value before the snapshot (0 without orders)",
    "spend_90d": "spend in the 90 days before the snapshot",
    "orders_90d": "orders in the 90 days before the snapshot",
    "tenure_days": "days since signup",
    "sessions_30d": "browsing sessions in the 30 days before the snapshot",
    "cart_adds_30d": "add-to-cart events in the 30 days before the snapshot",
    "review_count": "reviews written before the snapshot",
    "mean_rating": "mean review rating (0 without reviews)",
}
FEATURE_NAMES: list[str] = list(FEATURES)

CHURN_LABEL = "churned"  # 1 = no order in the horizon after the snapshot
VALUE_LABEL = "spend_horizon"  # spend in the horizon after the snapshot
LABELS = (CHURN_LABEL, VALUE_LABEL)
