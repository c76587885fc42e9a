"""Seeded synthetic e-commerce history: customers, products, orders and their lines, events, reviews.

    custintel generate            # writes <data_dir>/versioned/raw/*.parquet

Each customer has latent traits (archetype, purchase rate, dropout time, spend level, category
taste, browsing intensity, cart-abandonment and return propensity); orders follow an
inhomogeneous Poisson process, rate x the weekly and seasonal multiplier s(day)
(`custintel.data.seasonality`), until the customer drops out. Each order is split into lines of
catalogue products that sum to its amount; some lines are returned later (returns do not change
the order's amount: spend is gross of returns). Deterministic for a given seed and
configuration; fully vectorised with numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from custintel.config import DataSection
from custintel.data.archetypes import AGE_BANDS, ARCHETYPES, CHANNELS, COUNTRIES
from custintel.data.scenarios import NEW_CHANNEL, SCENARIOS, Scenario
from custintel.data.seasonality import DAY_S, Clock

NEVER_S = 1e12  # a scenario start far beyond any history: "no scenario"
NEW_CUSTOMER = 3  # index of the new-customer archetype
CHUNK_CUSTOMERS = 50_000  # customers simulated and written at a time
EVENT_TYPES = ("view", "search", "add_to_cart", "remove_from_cart", "checkout")
# A session, in this order: a landing view, maybe a search, more views, add-to-carts, maybe a
# remove-from-cart, maybe a checkout (slot -> index in EVENT_TYPES).
SESSION_SLOTS = np.array([0, 1, 0, 2, 3, 4], dtype=np.int8)
EVENT_GAP_S = 40.0  # mean seconds between events of a session, plus 1.5 (whole seconds stay distinct)
DISCOUNT_PROB = 0.2  # share of orders with a discount
DISCOUNT_RANGE = (0.05, 0.3)  # discount fraction, uniform
MEAN_PAID_FRACTION = 1 - DISCOUNT_PROB * sum(DISCOUNT_RANGE) / 2  # E[amount] / E[gross]
PRODUCTS_PER_CATEGORY = 200
PRODUCT_STREAM = 1_000_003  # the catalogue's random stream: (seed, this); chunks use (seed, k)
RETURN_DAYS = (2.0, 30.0)  # a returned line comes back this many days after its order, uniform
TABLES = ("customers", "products", "orders", "order_lines", "events", "reviews")
TRUTH_TABLE = "customer_truth"  # latent traits: ground truth for evaluation, never a feature

_ADJECTIVES = ("Classic", "Smart", "Eco", "Deluxe", "Compact", "Urban", "Pro", "Soft", "Bold", "Basic")
_NOUNS = ("Kit", "Set", "Pack", "Edition", "Bundle", "Piece", "Model", "Series")
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
    products: pd.DataFrame  # the whole catalogue in the first chunk, empty in later ones
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    events: pd.DataFrame
    reviews: pd.DataFrame
    truth: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {**{name: getattr(self, name) for name in TABLES}, TRUTH_TABLE: self.truth}


def _epoch(d) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _to_ts(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Whole seconds, rounded down: a time before the end of history stays before it."""
    return pd.to_datetime(np.floor(seconds).astype("int64"), unit="s", utc=True)


def _category_names(n_categories: int) -> np.ndarray:
    return np.array([f"cat_{i:02d}" for i in range(n_categories)])


def product_catalogue(n_categories: int, seed: int) -> pd.DataFrame:
    """The products, PRODUCTS_PER_CATEGORY per category, each category with its own lognormal list
    prices. One catalogue per seed (its own stream), shared by all chunks: ids are global."""
    rng = np.random.default_rng([seed, PRODUCT_STREAM])
    n = n_categories * PRODUCTS_PER_CATEGORY
    category = np.repeat(np.arange(n_categories), PRODUCTS_PER_CATEGORY)
    level = rng.normal(3.3, 0.4, n_categories)  # log list price level of each category
    price = np.maximum(np.round(np.exp(rng.normal(level[category], 0.9)), 2), 0.5)
    ids = np.arange(1, n + 1, dtype=np.int64)
    name = [f"{_ADJECTIVES[a]} {_NOUNS[b]} {i:05d}" for a, b, i in
            zip(rng.integers(0, len(_ADJECTIVES), n), rng.integers(0, len(_NOUNS), n), ids, strict=True)]
    return pd.DataFrame({"product_id": ids, "category": _category_names(n_categories)[category],
                         "price": price, "name": np.array(name, dtype=object)})


def _dropout_times(rng, signup, hazard, start: float, multiplier: float) -> np.ndarray:
    """Dropout by inverting the cumulative hazard: `hazard` before `start`, x `multiplier` after."""
    e = rng.exponential(1.0, len(signup))
    before = np.clip(start - signup, 0, None)  # active seconds at the base hazard
    plain = signup + e / hazard
    after = signup + before + (e - hazard * before) / (multiplier * hazard)
    return np.where(e <= hazard * before, plain, after)


def _beta_around(rng, mean: np.ndarray, concentration: float = 10.0) -> np.ndarray:
    """Per-customer propensities scattered around their archetype's mean."""
    return rng.beta(concentration * mean, concentration * (1 - mean))


def _simulate_customers(
    cfg: DataSection, rng: np.random.Generator, clock: Clock, t0: float, t1: float, scenario: Scenario,
    start: float,
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
            "return_rate",
        )
    }
    # Signing up is placing the first order, so signups follow the weekly and seasonal shape too:
    # fractions of history are taken in the clock's time (cumulative intensity), not calendar time.
    # New customers sign up in the last third of history; the others any time before the last month.
    signup_frac = np.where(arche == NEW_CUSTOMER, rng.uniform(2 / 3, 0.97, n), rng.uniform(0, 0.9, n) ** 1.3)
    first, last = clock.intensity(np.array([t0, t1]))
    surge_from, surge_to = clock.intensity(np.array([min(start, t1 - DAY_S), t1 - DAY_S]))
    signup = clock.time_of(np.where(surge, rng.uniform(surge_from, surge_to, n),
                                    first + signup_frac * (last - first)))
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
            "_browse": attr["sessions_per_order"] * rng.lognormal(0, 0.3, n),  # sessions per order
            "_cart_abandon": _beta_around(rng, attr["cart_abandon"]),
            "_return_rate": _beta_around(rng, attr["return_rate"]),
            "_review_rate": attr["review_rate"],
            "_tone": attr["tone"],
        }
    )


def _poisson_times(rng, clock: Clock, starts, ends, rates) -> tuple[np.ndarray, np.ndarray]:
    """Event times of independent inhomogeneous Poisson processes on [start, end) per row, with
    intensity rate x s(day): a homogeneous process in the clock's time, mapped back to calendar
    time (time change). Returns (row index, time), sorted by row, then time."""
    begin = clock.intensity(starts)
    span = np.clip(clock.intensity(np.maximum(ends, starts)) - begin, 0, None)
    counts = rng.poisson(rates * span)
    owner = np.repeat(np.arange(len(starts)), counts)
    level = rng.uniform(0, 1, counts.sum())
    level = level[np.lexsort((level, owner))]  # owner is sorted already; sort within each row
    return owner, clock.time_of(begin[owner] + level * span[owner])


def _simulate_orders(
    cust: pd.DataFrame, cfg: DataSection, rng, clock: Clock, t1: float, scenario: Scenario, start: float,
    products: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders and their lines. The order's value before discount (`gross`) is lognormal at the
    customer's spend level, as the ground truth assumes; the lines split it, and the order's
    amount is the sum of its lines after discount, to the cent."""
    signup = cust["_signup_s"].to_numpy()
    active_end = np.minimum(cust["_dropout_s"].to_numpy(), t1)
    owner, times = _poisson_times(rng, clock, signup, active_end, cust["_rate"].to_numpy())
    # Signing up is placing the first order; later orders follow the Poisson process.
    owner = np.concatenate([owner, np.arange(len(signup))])
    times = np.concatenate([times, signup])
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    n = len(owner)
    taste = rng.dirichlet(np.full(cfg.n_categories, 0.6), len(cust))
    cum = np.cumsum(taste, axis=1)[owner]
    category = (rng.uniform(0, 1, n)[:, None] > cum).sum(axis=1).clip(0, cfg.n_categories - 1)
    del cum
    after = times >= start
    category = np.where(after, (category + scenario.category_shift) % cfg.n_categories, category)
    gross = rng.lognormal(cust["_spend_mu"].to_numpy()[owner], cust["_spend_sigma"].to_numpy()[owner])
    gross *= np.where(after, scenario.price_factor, 1.0)
    discount = np.where(rng.uniform(0, 1, n) < DISCOUNT_PROB, rng.uniform(*DISCOUNT_RANGE, n), 0.0)
    lines = _simulate_lines(rng, gross, discount, category, times, cust["_return_rate"].to_numpy()[owner],
                            products, cfg.n_categories, t1)
    value = lines["quantity"] * lines["unit_price"]
    idx = lines["order_idx"]
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1, dtype=np.int64),
            "customer_id": cust["customer_id"].to_numpy()[owner],
            "order_ts": _to_ts(times),
            "amount": np.round(np.bincount(idx, value * (1 - lines["discount"]), minlength=n), 2),
            "discount": np.round(np.bincount(idx, value * lines["discount"], minlength=n), 2),
            "category": _category_names(cfg.n_categories)[category],  # the category of the largest line
            "n_items": np.bincount(idx, lines["quantity"], minlength=n).astype(np.int16),
        }
    )
    return_ts = _to_ts(lines["return_s"])
    order_lines = pd.DataFrame(
        {
            "line_id": np.arange(1, len(idx) + 1, dtype=np.int64),
            "order_id": (idx + 1).astype(np.int64),
            "product_id": lines["product_id"],
            "quantity": lines["quantity"].astype(np.int16),
            "unit_price": lines["unit_price"],
            "discount": lines["discount"],
            "returned": lines["returned"],
            "return_ts": return_ts.where(lines["returned"]),
        }
    )
    return orders, order_lines


def _simulate_lines(rng, gross, discount, category, times, return_rate, products: pd.DataFrame,
                    n_categories: int, t1: float) -> dict[str, np.ndarray]:
    """Split each order's gross value over 1-4 lines, largest first; the first line is in the order's
    category, the others mostly too. Each line's product is a catalogue product of its category
    whose list price is near the line's unit price. The unit price (before the order's discount)
    carries the order's value, so it follows the customer's spend level and any price scenario;
    it tracks, but need not equal, the list price. A line is returned with the customer's return
    propensity, RETURN_DAYS after the order, if that is before the end of history."""
    n = len(gross)
    n_lines = 1 + rng.binomial(3, 0.25, n)
    idx = np.repeat(np.arange(n), n_lines)
    m = len(idx)
    weight = rng.gamma(2.0, 1.0, m)
    weight = weight[np.lexsort((-weight, idx))]  # idx is sorted already; largest line first
    weight /= np.bincount(idx, weight, minlength=n)[idx]
    position = np.arange(m) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    quantity = 1 + rng.poisson(0.3, m)
    target = gross[idx] * weight / quantity
    unit_price = np.maximum(np.round(target, 2), 0.01)
    line_cat = np.where((position == 0) | (rng.uniform(0, 1, m) < 0.7), category[idx],
                        rng.integers(0, n_categories, m))
    # nearest list price (in logs, with some taste noise) among the products of the line's category
    cat_of = pd.Categorical(products["category"], categories=_category_names(n_categories)).codes
    key = cat_of * 100.0 + 50.0 + np.log(products["price"].to_numpy())
    by_key = np.argsort(key, kind="stable")
    key = key[by_key]
    want = line_cat * 100.0 + 50.0 + np.clip(np.log(target) + rng.normal(0, 0.2, m), -45, 45)
    hi = np.clip(np.searchsorted(key, want), 0, len(key) - 1)
    lo = np.clip(hi - 1, 0, len(key) - 1)
    nearest = np.where(np.abs(key[hi] - want) < np.abs(key[lo] - want), hi, lo)
    return_s = times[idx] + rng.uniform(*RETURN_DAYS, m) * DAY_S
    returned = (rng.uniform(0, 1, m) < return_rate[idx]) & (return_s < t1)
    return {"order_idx": idx, "product_id": products["product_id"].to_numpy()[by_key[nearest]],
            "quantity": quantity, "unit_price": unit_price, "discount": discount[idx],
            "returned": returned, "return_s": np.where(returned, return_s, t1)}


def _simulate_events(cust: pd.DataFrame, rng, clock: Clock, t1: float) -> pd.DataFrame:
    """Browsing sessions (rate x s(day), fading out a month after dropout). A session is a landing
    view, maybe a search, more views, and in some sessions add-to-carts, maybe a remove-from-cart and
    maybe a checkout; the customer's browsing intensity drives searches and views, the
    cart-abandonment tendency removals and checkouts. Events of a session are at least a second
    apart (1.5 s at least); a session that starts just before the end of history is cut off there."""
    signup = cust["_signup_s"].to_numpy()
    end = np.minimum(cust["_dropout_s"].to_numpy() + 30 * DAY_S, t1)
    browse = cust["_browse"].to_numpy()
    owner, start = _poisson_times(rng, clock, signup, end, cust["_rate"].to_numpy() * browse)
    n_sess = len(owner)
    browse, abandon = browse[owner], cust["_cart_abandon"].to_numpy()[owner]
    u = rng.uniform(0, 1, (n_sess, 4))
    counts = np.zeros((n_sess, len(SESSION_SLOTS)), dtype=np.int64)  # per session and slot
    counts[:, 0] = 1
    counts[:, 1] = u[:, 0] < 1 - np.exp(-0.15 * browse)
    counts[:, 2] = rng.poisson(0.4 * browse)
    carted = u[:, 1] < 0.45
    counts[:, 3] = carted * (1 + rng.poisson(0.3, n_sess))
    counts[:, 4] = carted & (u[:, 2] < 0.5 * abandon)
    counts[:, 5] = carted & (u[:, 3] > abandon) & (counts[:, 3] > counts[:, 4])
    del u
    flat = np.repeat(np.arange(counts.size), counts.ravel())  # sorted by session, then slot
    sess_idx, code = flat // counts.shape[1], SESSION_SLOTS[flat % counts.shape[1]]
    del flat
    gap = 1.5 + rng.exponential(EVENT_GAP_S, len(sess_idx))
    per_session = counts.sum(axis=1)
    first = np.cumsum(per_session) - per_session
    gap[first] = 0.0
    elapsed = np.cumsum(gap)
    ts = start[sess_idx] + elapsed - elapsed[first][sess_idx]
    keep = ts < t1
    return pd.DataFrame(
        {
            "event_id": np.arange(1, keep.sum() + 1, dtype=np.int64),
            "session_id": (sess_idx[keep] + 1).astype(np.int64),
            "customer_id": cust["customer_id"].to_numpy()[owner][sess_idx[keep]],
            "event_ts": _to_ts(ts[keep]),
            "event_type": pd.Categorical.from_codes(code[keep], categories=EVENT_TYPES),
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


def _simulate_chunk(cfg: DataSection, rng: np.random.Generator, products: pd.DataFrame) -> GeneratedData:
    """`cfg.n_customers` customers (plus a surge, if configured) with ids starting at 1."""
    t0, t1 = _epoch(cfg.start_date), _epoch(cfg.end_date)
    clock = Clock(t0, t1)
    scenario, start = SCENARIOS[cfg.scenario], scenario_start_s(cfg)
    cust = _simulate_customers(cfg, rng, clock, t0, t1, scenario, start)
    orders, order_lines = _simulate_orders(cust, cfg, rng, clock, t1, scenario, start, products)
    events = _simulate_events(cust, rng, clock, t1)
    reviews = _simulate_reviews(cust, orders, rng, t1)
    if scenario.broken_feed:
        orders = _break_feed(orders, start)  # the orders feed only: its lines keep the true values
    public = [c for c in cust.columns if not c.startswith("_")]
    truth = pd.DataFrame(
        {
            "customer_id": cust["customer_id"],
            "archetype": cust["_archetype"],
            "signup_ts": cust["signup_ts"],
            "dropout_ts": _to_ts(np.minimum(cust["_dropout_s"], 4e9)),
            "rate_per_day": cust["_rate"] * DAY_S,  # x s(day) on each day (custintel.data.seasonality)
            "hazard_per_day": cust["_hazard"] * DAY_S,
            "spend_mu": cust["_spend_mu"],
            "spend_sigma": cust["_spend_sigma"],
            "sessions_per_order": cust["_browse"],
            "cart_abandon": cust["_cart_abandon"],
            "return_propensity": cust["_return_rate"],
        }
    )
    return GeneratedData(customers=cust[public], products=products, orders=orders, order_lines=order_lines,
                         events=events, reviews=reviews, truth=truth)


def _shift_ids(data: GeneratedData, offsets: dict[str, int]) -> GeneratedData:
    """Move a chunk's ids (customer, order, line, session, event, review) past the earlier chunks'.
    Product ids are global already."""
    c, o = offsets["customer"], offsets["order"]
    return GeneratedData(
        customers=data.customers.assign(customer_id=data.customers["customer_id"] + c),
        products=data.products,
        orders=data.orders.assign(
            order_id=data.orders["order_id"] + o, customer_id=data.orders["customer_id"] + c
        ),
        order_lines=data.order_lines.assign(
            line_id=data.order_lines["line_id"] + offsets["line"], order_id=data.order_lines["order_id"] + o
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
    Chunk k draws from its own stream (seed, k): the result does not depend on what else runs.
    The product catalogue comes from its own stream, once; the first chunk carries it."""
    catalogue = product_catalogue(cfg.n_categories, seed)
    offsets = dict.fromkeys(("customer", "order", "line", "event", "session", "review"), 0)
    world = cfg.model_copy(update={"end_date": cfg.simulate_until}) if cfg.simulate_until else cfg
    for k, first in enumerate(range(0, cfg.n_customers, chunk_customers)):
        part = world.model_copy(update={"n_customers": min(chunk_customers, cfg.n_customers - first)})
        chunk = _simulate_chunk(part, np.random.default_rng([seed, k]), catalogue)
        chunk = _shift_ids(replace(chunk, products=catalogue if k == 0 else catalogue.iloc[:0]), offsets)
        yield cut_at(chunk, _epoch(cfg.end_date)) if cfg.simulate_until else chunk
        offsets = {
            "customer": int(chunk.customers["customer_id"].max()),
            "order": offsets["order"] + len(chunk.orders),
            "line": offsets["line"] + len(chunk.order_lines),
            "event": offsets["event"] + len(chunk.events),
            "review": offsets["review"] + len(chunk.reviews),
            "session": int(chunk.events["session_id"].max()) if len(chunk.events) else offsets["session"],
        }


def cut_at(data: GeneratedData, end_s: float) -> GeneratedData:
    """What of `data` had happened before `end_s` (epoch seconds): customers signed up, orders, their
    lines (a return after `end_s` has not happened yet), events and reviews before it. Ids are kept."""
    end = pd.Timestamp(end_s, unit="s", tz="UTC")
    customers = data.customers[data.customers["signup_ts"] < end]
    orders = data.orders[data.orders["order_ts"] < end]
    lines = data.order_lines[data.order_lines["order_id"].isin(orders["order_id"])].copy()
    later = lines["return_ts"].notna() & (lines["return_ts"] >= end)
    lines.loc[later, "returned"] = False
    lines.loc[later, "return_ts"] = pd.NaT
    return GeneratedData(
        customers=customers.reset_index(drop=True), products=data.products,
        orders=orders.reset_index(drop=True), order_lines=lines.reset_index(drop=True),
        events=data.events[data.events["event_ts"] < end].reset_index(drop=True),
        reviews=data.reviews[data.reviews["review_ts"] < end].reset_index(drop=True),
        truth=data.truth[data.truth["customer_id"].isin(customers["customer_id"])].reset_index(drop=True))


def generate(cfg: DataSection, seed: int) -> GeneratedData:
    """The whole history in memory (for small datasets and tests); same rows as `generate_chunks`."""
    chunks = list(generate_chunks(cfg, seed))
    return GeneratedData(
        **{
            field.name: pd.concat([getattr(c, field.name) for c in chunks], ignore_index=True)
            for field in fields(GeneratedData)
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
