"""Latent customer archetypes that drive the synthetic generator.

Rates are per 30 days; spend is lognormal per order; return_rate is per order line. The numbers are
chosen so that the archetypes differ in purchase rate, dropout hazard and spend, which is what the
models must learn.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archetype:
    name: str
    weight: float  # share of customers
    orders_per_30d: float  # mean purchase rate while active
    dropout_per_30d: float  # hazard of becoming inactive for good
    spend_mu: float  # lognormal mean of log order value
    spend_sigma: float
    sessions_per_order: float  # browsing intensity
    cart_abandon: float  # probability an add-to-cart session does not check out
    review_rate: float  # probability an order gets a review
    tone: float  # mean review rating, 1..5
    return_rate: float  # mean share of order lines returned (per-customer propensity varies around it)


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("loyal_high_spender", 0.15, 2.0, 0.02, 4.6, 0.45, 2.0, 0.25, 0.30, 4.5, 0.06),
    Archetype("bargain_hunter", 0.25, 1.5, 0.05, 3.3, 0.50, 4.0, 0.60, 0.15, 3.6, 0.18),
    Archetype("occasional", 0.30, 0.4, 0.06, 3.9, 0.60, 3.0, 0.45, 0.10, 3.9, 0.08),
    Archetype("new_customer", 0.15, 0.9, 0.10, 3.8, 0.60, 3.0, 0.50, 0.12, 4.0, 0.10),
    Archetype("churning", 0.15, 0.8, 0.30, 3.7, 0.55, 2.5, 0.55, 0.20, 2.6, 0.15),
)

COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE")
CHANNELS = ("organic", "paid_search", "social", "email", "referral")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
