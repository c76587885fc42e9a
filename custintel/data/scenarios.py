"""Named drift scenarios of the generator. Each starts at `data.scenario_start` and changes the
simulation from then on; `moves` names the features it should move (what drift monitoring must
find).

    data:
      scenario: churn_wave
      scenario_start: "2025-10-01"
"""

from __future__ import annotations

from dataclasses import dataclass

NEW_CHANNEL = "tiktok"  # channel of the customers a new-customer surge brings


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    moves: tuple[str, ...]  # features expected to drift
    hazard_multiplier: float = 1.0  # dropout hazard x this after the start
    price_factor: float = 1.0  # order values x this after the start
    surge_share: float = 0.0  # extra new customers (share of data.n_customers) after the start
    category_shift: int = 0  # category index rotates by this after the start
    broken_feed: bool = False  # after the start: amount reported in cents, category missing


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("none", "no drift", ()),
    Scenario("price_inflation", "order values 30% higher from the start", ("monetary_mean", "spend_90d"),
             price_factor=1.3),
    Scenario("new_customer_surge", f"40% more customers sign up from the start through channel "
             f"{NEW_CHANNEL!r}, all of the new-customer archetype",
             ("tenure_days", "frequency", "recency_days", "review_count"), surge_share=0.4),
    Scenario("churn_wave", "dropout hazard 4x from the start", ("recency_days", "orders_90d", "spend_90d",
             "sessions_30d", "cart_adds_30d"), hazard_multiplier=4.0),
    # no feature is per-category; the basket mix features see customers' lifetime baskets mix old and
    # new categories (entropy up, top category share down)
    Scenario("category_shift", "every customer's category taste rotates by one category from the start",
             ("category_entropy", "top_category_share"), category_shift=1),
    Scenario("broken_feed", "upstream bug from the start: amounts in cents, category missing",
             ("monetary_mean", "spend_90d"), broken_feed=True),
)}
