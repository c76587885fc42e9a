"""Seeded synthetic e-commerce history: customers, orders, events and reviews.

    custintel generate            # writes <data_dir>/versioned/raw/*.parquet

Each customer has latent traits (archetype, purchase rate, dropout time, spend level,
category taste, browsing intensity); orders follow a Poisson process until the customer drops
out. Deterministic for a given seed and configuration; fully vectorised with numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import DataSection
from custintel.data.archetypes import AGE_BANDS, ARCHETYPES, CHANNELS, COUNTRIES
from custintel.data.scenarios import NEW_CHANNEL, SCENARIOS, Scenario

DAY_S = 86_400.0
NEVER_S = 1e12  # a scenario start far beyond any history: "no scenario"
NEW_CUSTOMER = 3  # index of the new-customer archetype
CHUNK_CUSTOMERS = 50_000  # customers simulated and written at a time
EVENT_TYPES = ("view", "add_to_cart", "checkout")  # in the order they happen within a session
EVENT_OFFSET_S = np.array([0.0, 300.0, 600.0])  # seconds after the session start
DISCOUNT_PROB = 0.2  # share of orders with a discount
DISCOUNT_RANGE = (0.05, 0.3)  # discount fraction, uniform
MEAN_PAID_FRACTION = 1 - DISCOUNT_PROB * sum(DISCOUNT_RANGE) / 2  # E[amount] / E[gross]
TABLES = ("customers", "orders", "events", "reviews")
TRUTH_TABLE = "customer_truth"  # latent traits: ground truth for evaluation, never a feature

_REVIEW_TEXT = {
    1: ("Terrible, broke after a day.", "Very disappointed, would not buy again."),
    2: ("Not great, quality is poor.", "Arrived late and looked cheap."),
    3: ("It is okay for the price.", "Average product, does the job."),
    4: ("Good quality, happy with it.", "Nice product and fast delivery."),
    5: ("Excellent, absolutely love it!", "Perfect, will definitely buy again."),
}


@dataclass(frozen=True)
class GeneratedData:
    customers: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    reviews: pd.DataFrame
    truth: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {**{name: getattr(self, name) for name in TABLES}, TRUTH_TABLE: self.truth}


def _epoch(d) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _to_ts(seconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.round(seconds).astype("int64"), unit="s", utc=True)


def _dropout_times(rng, signup, hazard, start: float, multiplier: float) -> np.ndarray:
    """Dropout by inverting the cumulative hazard: `hazard` before `start`, x `multiplier` after."""
    e = rng.exponential(1.0, len(signup))
    before = np.clip(start - signup, 0, None)  # active seconds at the base hazard
    plain = signup + e / hazard
    after = signup + before + (e - hazard * before) / (multiplier * hazard)
    return np.where(e <= hazard * before, plain, after)


def _simulate_customers(
    cfg: DataSection, rng: np.random.Generator, t0: float, t1: float, scenario: Scenario, start: float
) -> pd.DataFrame:
    n_base = cfg.n_customers
    n = n_base + int(round(scenario.surge_share * n_base))
    weights = np.array([a.weight for a in ARCHETYPES])
    arche = rng.choice(len(ARCHETYPES), size=n, p=weights / weights.sum())
    surge = np.arange(n) >= n_base
    arche[surge] = NEW_CUSTOMER
    attr = {
        f: np.array([getattr(a, f) for a in ARCHETYPES])[arche]
        for f in (
            "orders_per_30d",
            "dropout_per_30d",
            "spend_mu",
            "spend_sigma",
            "sessions_per_order",
            "cart_abandon",
            "review_rate",
            "tone",
        )
    }
    span = t1 - t0
    # New customers sign up in the last third of history; the others any time before the last month.
    signup_frac = np.where(arche == NEW_CUSTOMER, rng.uniform(2 / 3, 0.97, n), rng.uniform(0, 0.9, n) ** 1.3)
    signup = np.where(surge, rng.uniform(min(start, t1 - DAY_S), t1 - DAY_S, n), t0 + signup_frac * span)
    rate = rng.gamma(4.0, attr["orders_per_30d"] / 4.0) / (30 * DAY_S)  # orders per second
    hazard = attr["dropout_per_30d"] * rng.lognormal(0, 0.3, n) / (30 * DAY_S)
    dropout = _dropout_times(rng, signup, hazard, start, scenario.hazard_multiplier)
    channel = np.array(CHANNELS)[rng.integers(0, len(CHANNELS), n)]
    channel[surge] = NEW_CHANNEL
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "signup_ts": _to_ts(signup),
            "country": np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)],
            "channel": channel,
            "age_band": np.array(AGE_BANDS)[rng.integers(0, len(AGE_BANDS), n)],
            # latent columns, prefixed with an underscore: ground truth, never features
            "_archetype": np.array([a.name for a in ARCHETYPES])[arche],
            "_signup_s": signup,
            "_dropout_s": dropout,
            "_hazard": hazard,
            "_rate": rate,
            "_spend_mu": attr["spend_mu"] + rng.normal(0, 0.25, n),
            "_spend_sigma": attr["spend_sigma"],
            "_sessions_per_order": attr["sessions_per_order"],
            "_cart_abandon": attr["cart_abandon"],
            "_review_rate": attr["review_rate"],
            "_tone": attr["tone"],
        }
    )


def _poisson_times(rng, starts, ends, rates) -> tuple[np.ndarray, np.ndarray]:
    """Event times of independent Poisson processes on [start, end) per row: (row index, time)."""
    span = np.clip(ends - starts, 0, None)
    counts = rng.poisson(rates * span)
    owner = np.repeat(np.arange(len(starts)), counts)
    times = starts[owner] + rng.uniform(0, 1, counts.sum()) * span[owner]
    order = np.lexsort((times, owner))
    return owner[order], times[order]


def _simulate_orders(
    cust: pd.DataFrame, cfg: DataSection, rng, t1: float, scenario: Scenario, start: float
) -> pd.DataFrame:
    signup = cust["_signup_s"].to_numpy()
    active_end = np.minimum(cust["_dropout_s"].to_numpy(), t1)
    owner, times = _poisson_times(rng, signup, active_end, cust["_rate"].to_numpy())
    # Signing up is placing the first order; later orders follow the Poisson process.
    owner = np.concatenate([owner, np.arange(len(signup))])
    times = np.concatenate([times, signup])
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    n = len(owner)
    taste = rng.dirichlet(np.full(cfg.n_categories, 0.6), len(cust))
    cum = np.cumsum(taste, axis=1)[owner]
    category = (rng.uniform(0, 1, n)[:, None] > cum).sum(axis=1).clip(0, cfg.n_categories - 1)
    after = times >= start
    category = np.where(after, (category + scenario.category_shift) % cfg.n_categories, category)
    gross = rng.lognormal(cust["_spend_mu"].to_numpy()[owner], cust["_spend_sigma"].to_numpy()[owner])
    gross *= np.where(after, scenario.price_factor, 1.0)
    discount = np.where(rng.uniform(0, 1, n) < DISCOUNT_PROB, rng.uniform(*DISCOUNT_RANGE, n), 0.0)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1, dtype=np.int64),
            "customer_id": cust["customer_id"].to_numpy()[owner],
            "order_ts": _to_ts(times),
            "amount": np.round(gross * (1 - discount), 2),
            "discount": np.round(gross * discount, 2),
            "category": np.array([f"cat_{i:02d}" for i in range(cfg.n_categories)])[category],
            "n_items": rng.integers(1, 5, n).astype(np.int16),
        }
    )


def _simulate_events(cust: pd.DataFrame, rng, t1: float) -> pd.DataFrame:
    """Browsing sessions, each a view, maybe an add-to-cart, maybe a checkout."""
    signup = cust["_signup_s"].to_numpy()
    # Browsing fades out a month after dropout rather than stopping dead.
    end = np.minimum(cust["_dropout_s"].to_numpy() + 30 * DAY_S, t1)
    rate = cust["_rate"].to_numpy() * cust["_sessions_per_order"].to_numpy()
    owner, start = _poisson_times(rng, signup, end, rate)
    n_sess = len(owner)
    views = rng.integers(1, 6, n_sess)
    carted = rng.uniform(0, 1, n_sess) < 0.45
    checkout = carted & (rng.uniform(0, 1, n_sess) > cust["_cart_abandon"].to_numpy()[owner])
    counts = (views, carted.astype(int), checkout.astype(int))  # per session, in EVENT_TYPES order
    sess_idx = np.concatenate([np.repeat(np.arange(n_sess), k) for k in counts])
    code = np.concatenate([np.full(k.sum(), i, dtype=np.int8) for i, k in enumerate(counts)])
    ts = start[sess_idx] + EVENT_OFFSET_S[code] + rng.uniform(0, 120, len(sess_idx))
    order = np.lexsort((ts, sess_idx))
    order = order[ts[order] < t1]  # a session that starts just before the end is cut off there
    return pd.DataFrame(
        {
            "event_id": np.arange(1, len(order) + 1, dtype=np.int64),
            "session_id": (sess_idx[order] + 1).astype(np.int64),
            "customer_id": cust["customer_id"].to_numpy()[owner][sess_idx[order]],
            "event_ts": _to_ts(ts[order]),
            "event_type": pd.Categorical.from_codes(code[order], categories=EVENT_TYPES),
        }
    )


def _simulate_reviews(cust: pd.DataFrame, orders: pd.DataFrame, rng, t1: float) -> pd.DataFrame:
    idx = cust.set_index("customer_id")
    rate = idx["_review_rate"].reindex(orders["customer_id"]).to_numpy()
    picked = orders[rng.uniform(0, 1, len(orders)) < rate]
    tone = idx["_tone"].reindex(picked["customer_id"]).to_numpy()
    rating = np.clip(np.round(rng.normal(tone, 0.8)), 1, 5).astype(np.int8)
    ts = picked["order_ts"].astype("int64").to_numpy() / 1e9 + rng.uniform(2, 20, len(picked)) * DAY_S
    keep = ts < t1
    choice = rng.integers(0, 2, len(picked))
    text = np.array([_REVIEW_TEXT[r][c] for r, c in zip(rating, choice, strict=True)], dtype=object)
    return pd.DataFrame(
        {
            "review_id": np.arange(1, keep.sum() + 1, dtype=np.int64),
            "order_id": picked["order_id"].to_numpy()[keep],
            "customer_id": picked["customer_id"].to_numpy()[keep],
            "review_ts": _to_ts(ts[keep]),
            "rating": rating[keep],
            "text": text[keep],
        }
    )


def _break_feed(orders: pd.DataFrame, start: float) -> pd.DataFrame:
    """The broken-feed scenario: from the start, amounts arrive in cents and category is missing."""
    after = orders["order_ts"] >= pd.Timestamp(start, unit="s", tz="UTC")
    orders = orders.copy()
    orders.loc[after, ["amount", "discount"]] *= 100
    orders["category"] = orders["category"].astype(object).where(~after, None)
    return orders


def scenario_start_s(cfg: DataSection) -> float:
    return _epoch(cfg.scenario_start) if cfg.scenario != "none" and cfg.scenario_start else NEVER_S


def _simulate_chunk(cfg: DataSection, rng: np.random.Generator) -> GeneratedData:
    """`cfg.n_customers` customers (plus a surge, if configured) with ids starting at 1."""
    t0, t1 = _epoch(cfg.start_date), _epoch(cfg.end_date)
    scenario, start = SCENARIOS[cfg.scenario], scenario_start_s(cfg)
    cust = _simulate_customers(cfg, rng, t0, t1, scenario, start)
    orders = _simulate_orders(cust, cfg, rng, t1, scenario, start)
    events = _simulate_events(cust, rng, t1)
    reviews = _simulate_reviews(cust, orders, rng, t1)
    if scenario.broken_feed:
        orders = _break_feed(orders, start)
    public = [c for c in cust.columns if not c.startswith("_")]
    truth = pd.DataFrame(
        {
            "customer_id": cust["customer_id"],
            "archetype": cust["_archetype"],
            "signup_ts": cust["signup_ts"],
            "dropout_ts": _to_ts(np.minimum(cust["_dropout_s"], 4e9)),
            "rate_per_day": cust["_rate"] * DAY_S,
            "hazard_per_day": cust["_hazard"] * DAY_S,
            "spend_mu": cust["_spend_mu"],
            "spend_sigma": cust["_spend_sigma"],
        }
    )
    return GeneratedData(customers=cust[public], orders=orders, events=events, reviews=reviews, truth=truth)


def _shift_ids(data: GeneratedData, offsets: dict[str, int]) -> GeneratedData:
    """Move a chunk's ids (customer, order, session, event, review) past the earlier chunks'."""
    c, o = offsets["customer"], offsets["order"]
    return GeneratedData(
        customers=data.customers.assign(customer_id=data.customers["customer_id"] + c),
        orders=data.orders.assign(
            order_id=data.orders["order_id"] + o, customer_id=data.orders["customer_id"] + c
        ),
        events=data.events.assign(
            event_id=data.events["event_id"] + offsets["event"],
            session_id=data.events["session_id"] + offsets["session"],
            customer_id=data.events["customer_id"] + c,
        ),
        reviews=data.reviews.assign(
            review_id=data.reviews["review_id"] + offsets["review"],
            order_id=data.reviews["order_id"] + o,
            customer_id=data.reviews["customer_id"] + c,
        ),
        truth=data.truth.assign(customer_id=data.truth["customer_id"] + c),
    )


def generate_chunks(
    cfg: DataSection, seed: int, chunk_customers: int = CHUNK_CUSTOMERS
) -> Iterator[GeneratedData]:
    """The history in chunks of `chunk_customers` customers, so memory stays bounded at any size.
    Chunk k draws from its own stream (seed, k): the result does not depend on what else runs."""
    offsets = dict.fromkeys(("customer", "order", "event", "session", "review"), 0)
    for k, first in enumerate(range(0, cfg.n_customers, chunk_customers)):
        part = cfg.model_copy(update={"n_customers": min(chunk_customers, cfg.n_customers - first)})
        chunk = _shift_ids(_simulate_chunk(part, np.random.default_rng([seed, k])), offsets)
        yield chunk
        offsets = {
            "customer": int(chunk.customers["customer_id"].max()),
            "order": offsets["order"] + len(chunk.orders),
            "event": offsets["event"] + len(chunk.events),
            "review": offsets["review"] + len(chunk.reviews),
            "session": int(chunk.events["session_id"].max()) if len(chunk.events) else offsets["session"],
        }


def generate(cfg: DataSection, seed: int) -> GeneratedData:
    """The whole history in memory (for small datasets and tests); same rows as `generate_chunks`."""
    chunks = list(generate_chunks(cfg, seed))
    return GeneratedData(
        **{
            field: pd.concat([getattr(c, field) for c in chunks], ignore_index=True)
            for field in ("customers", "orders", "events", "reviews", "truth")
        }
    )


def write_tables(data: GeneratedData | Iterable[GeneratedData], raw_dir: Path) -> dict[str, int]:
    """Write each table to `<raw_dir>/<table>.parquet`, chunk by chunk; returns row counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    try:
        for chunk in [data] if isinstance(data, GeneratedData) else data:
            for name, frame in chunk.tables().items():
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(raw_dir / f"{name}.parquet", table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                counts[name] = counts.get(name, 0) + len(frame)
    finally:
        for writer in writers.values():
            writer.close()
    return counts
