"""Ground truth of the generator: the true churn probability and expected spend of every customer
at every snapshot, from the latent process. Never a feature; used to report how close a model
comes to the achievable.

While active, a customer's orders are an inhomogeneous Poisson process with rate l x s(day), the
weekly and seasonal multiplier of `custintel.data.seasonality`; the remaining active time has
hazard h (times the scenario's multiplier after its start). Two oracles know each customer's
latent traits (l, h, spend level), neither knows the future:

* **Bayes-optimal** (`true_churn_prob`, `true_expected_spend`): observes the purchase history up
  to the snapshot s, nothing else. Given the traits, the process is memoryless, so the history
  matters only through the last order t_l before s (signup is the first order, so there is one):
  the customer was active at t_l and placed no order in (t_l, s). Its posterior of being active:

      P(alive | history) = A / (A + D),   A = S(t_l->s) e^{-L(t_l->s)},
      D = int_{t_l}^{s} h(u) S(t_l->u) e^{-L(t_l->u)} du

  with S the survival under the (scenario-multiplied) hazard and L the integrated order rate. Then
  P(no order in H) = 1 - P(alive) + P(alive) P(no order in H | alive at s) and
  E[spend in H] = P(alive) E[spend in H | alive at s].
* **Clairvoyant** (`clairvoyant_churn_prob`, `clairvoyant_expected_spend`): also knows whether the
  customer is still active at the snapshot, a latent state no model can observe: 1 and 0 for a
  customer who has dropped out, the conditionals on being active otherwise. An upper bound.

Conditional on being active at s, per day j of the horizon, with l_j = l s_j, L_j = the sum of
l_k over the days k < j, and S_j = P(still active at the start of day j):

    P(no order in H | alive) = sum_j S_j e^{-L_j} h_j / (h_j + l_j) (1 - e^{-(h_j + l_j)}) + S_H e^{-L_H}
    E[spend in H | alive]    = sum_j l_j f_j S_j (1 - e^{-h_j}) / h_j x exp(mu + sigma^2 / 2) x paid fraction

which is exact for rates, hazards and price factors constant within a day (snapshots and
scenarios start at midnight UTC, and s changes only at midnight). The posterior's A and D are
computed the same way over (t_l, s): a partial first day of length tau = next midnight - t_l,
then whole days, each piece contributing e^{-G} h_j / k_j (1 - e^{-k_j tau}) to D with
k_j = h_j + l_j and G the sum of k tau over the earlier pieces; A = e^{-G} over all of them, so
A + D is P(no order in (t_l, s) | active at t_l). Without seasonality (s(day) = 1) and a constant
hazard: P(no order in H | alive) = h/(h+l)(1 - e^{-(h+l)H}) + e^{-(h+l)H},
E[orders | alive] = l (1 - e^{-hH}) / h and P(alive | history) = 1 / (1 + h/(l+h) (e^{(l+h)g} - 1))
with g = s - t_l. The broken-feed scenario corrupts the recorded amounts, not what customers
spend, so its truth is unchanged. Spend is what orders.amount records: gross of returns.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from custintel.data.generator import MEAN_PAID_FRACTION
from custintel.data.scenarios import SCENARIOS, Scenario
from custintel.data.seasonality import DAY_S, daily_multiplier
from custintel.features.schema import ENTITY_KEY, TIMESTAMP

TRUE_CHURN = "true_churn_prob"  # Bayes-optimal: traits + purchase history
TRUE_SPEND = "true_expected_spend"
ALIVE_PROB = "true_alive_prob"  # P(still active at the snapshot | traits, purchase history)
CLAIRVOYANT_CHURN = "clairvoyant_churn_prob"  # also knows whether the customer is still active
CLAIRVOYANT_SPEND = "clairvoyant_expected_spend"
LAST_ORDER = "last_order_ts"  # the last order before the snapshot, what the Bayes-optimal oracle sees
GRID_CELLS = 1_000_000  # (customer, day) pieces per block of the posterior (bounds its memory)


def _scenario_start(scenario: str, scenario_start: datetime | None) -> pd.Timestamp | None:
    start = pd.Timestamp(scenario_start) if scenario != "none" and scenario_start is not None else None
    if start is not None and start.tzinfo is None:
        start = start.tz_localize("UTC")
    return start


def _day_effects(first_day: int, n_days: int, scenario: Scenario,
                 start: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per day from `first_day` (days since the epoch): hazard multiplier, price factor and s_j."""
    days = first_day + np.arange(n_days)
    if start is None:
        after = np.zeros(n_days, dtype=bool)
    else:
        after = days >= _epoch_day(start)
    return (np.where(after, scenario.hazard_multiplier, 1.0), np.where(after, scenario.price_factor, 1.0),
            daily_multiplier(days))


def _epoch_day(ts: pd.Timestamp) -> int:
    return int(ts.tz_convert(None).to_datetime64().astype("datetime64[D]").astype("int64"))


def given_alive(rate: np.ndarray, hazard: np.ndarray, snap_day: int, horizon_days: int, scenario: Scenario,
                start: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray]:
    """P(no order in the horizon) and E[orders x price factor in it] of customers active at the
    snapshot (midnight starting day `snap_day`), per customer: rates and hazards per day."""
    multiplier, price, season = _day_effects(snap_day, horizon_days, scenario, start)
    lam = rate[:, None] * season[None, :]  # l_j, (customers, days)
    haz = hazard[:, None] * multiplier[None, :]  # h_j
    cum = np.cumsum(haz, axis=1)
    survive = np.exp(-np.concatenate([np.zeros((len(rate), 1)), cum[:, :-1]], axis=1))  # S_j
    cum_lam = np.cumsum(lam, axis=1)
    no_order = np.exp(-np.concatenate([np.zeros((len(rate), 1)), cum_lam[:, :-1]], axis=1))  # e^{-L_j}
    p_none = (survive * no_order * haz / (haz + lam) * (1 - np.exp(-(haz + lam)))).sum(axis=1)
    p_none += np.exp(-cum[:, -1] - cum_lam[:, -1])
    orders = (lam * price[None, :] * survive * (1 - np.exp(-haz)) / haz).sum(axis=1)
    return p_none, orders


def alive_posterior(rate: np.ndarray, hazard: np.ndarray, last_order_day: np.ndarray, snap_day: int,
                    scenario: Scenario, start: pd.Timestamp | None) -> np.ndarray:
    """P(active at the snapshot | traits, last order at `last_order_day` (days since the epoch, a
    float before `snap_day`), no order since), exactly on the daily grid. Each customer's pieces
    (the partial day of the last order, then whole days up to the snapshot) are laid end to end,
    in blocks of at most GRID_CELLS pieces."""
    last_order_day = np.asarray(last_order_day, dtype=float)
    d0 = np.floor(last_order_day).astype(np.int64)
    if (d0 >= snap_day).any():
        raise ValueError("every last order must be before the snapshot")
    partial = d0 + 1 - last_order_day  # the first piece: from t_l to the next midnight, in (0, 1]
    n_pieces = snap_day - d0
    first = int(d0.min()) if len(d0) else snap_day
    multiplier, _, season = _day_effects(first, snap_day - first, scenario, start)
    result = np.empty(len(rate))
    ends = np.cumsum(n_pieces)
    begin = 0
    while begin < len(rate):
        done = ends[begin - 1] if begin else 0
        end = max(int(np.searchsorted(ends, done + GRID_CELLS, side="right")), begin + 1)
        count = n_pieces[begin:end]
        owner = np.repeat(np.arange(end - begin), count)
        offset = np.cumsum(count) - count  # where each customer's pieces start
        day = d0[begin:end][owner] + np.arange(len(owner)) - offset[owner] - first
        tau = np.ones(len(owner))
        tau[offset] = partial[begin:end]
        haz = hazard[begin:end][owner] * multiplier[day]
        k = rate[begin:end][owner] * season[day] + haz
        kt = k * tau
        cum = np.cumsum(kt)
        base = cum[offset] - kt[offset]  # the sum before each customer's first piece
        total = cum[offset + count - 1] - base
        before = cum - kt - base[owner]  # G: the sum of k tau over the customer's earlier pieces
        alive = np.exp(-total)  # A
        dropped = np.bincount(owner, np.exp(-before) * haz / k * -np.expm1(-kt), minlength=end - begin)  # D
        result[begin:end] = alive / (alive + dropped)
        begin = end
    return result


def _nanoseconds(ts) -> np.ndarray:
    """UTC timestamps (a Series or index, naive = UTC) as int64 nanoseconds since the epoch."""
    ts = pd.DatetimeIndex(ts)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts
    return ts.tz_convert(None).to_numpy().astype("datetime64[ns]").astype("int64")


def true_scores(truth: pd.DataFrame, snapshots: list[datetime], horizon_days: int,
                scenario: str = "none", scenario_start: datetime | None = None, *,
                orders: pd.DataFrame) -> pd.DataFrame:
    """One row per (customer signed up before the snapshot, snapshot): the Bayes-optimal scores
    (TRUE_CHURN, TRUE_SPEND, from the traits and the last order before the snapshot in `orders`,
    which needs customer_id and order_ts), ALIVE_PROB, LAST_ORDER, and the clairvoyant scores."""
    spec = SCENARIOS[scenario]
    start = _scenario_start(scenario, scenario_start)
    snaps = pd.to_datetime(snapshots, utc=True)
    order_ns, customer = _nanoseconds(orders["order_ts"]), orders["customer_id"].to_numpy()
    frames = []
    for snap in snaps:
        rows = truth[truth["signup_ts"] < snap]
        ids = rows[ENTITY_KEY].to_numpy()
        before = order_ns < snap.value
        last = pd.Series(order_ns[before]).groupby(customer[before]).max().reindex(ids).to_numpy()
        # signing up is the first order: it bounds the last order from below if `orders` lacks it
        latest = np.fmax(last, _nanoseconds(rows["signup_ts"])).astype("int64")
        rate, hazard = rows["rate_per_day"].to_numpy(), rows["hazard_per_day"].to_numpy()
        snap_day = _epoch_day(snap)
        p_none, orders_alive = given_alive(rate, hazard, snap_day, horizon_days, spec, start)
        latest_day = latest / 1e9 / DAY_S
        p_alive = alive_posterior(rate, hazard, latest_day, snap_day, spec, start)
        order_value = np.exp(rows["spend_mu"] + rows["spend_sigma"] ** 2 / 2).to_numpy() * MEAN_PAID_FRACTION
        spend_alive = orders_alive * order_value
        active = (rows["dropout_ts"] > snap).to_numpy()
        frames.append(pd.DataFrame({
            ENTITY_KEY: ids, TIMESTAMP: snap,
            TRUE_CHURN: 1 - p_alive + p_alive * p_none, TRUE_SPEND: p_alive * spend_alive,
            ALIVE_PROB: p_alive, LAST_ORDER: pd.to_datetime(latest, unit="ns", utc=True),
            CLAIRVOYANT_CHURN: np.where(active, p_none, 1.0),
            CLAIRVOYANT_SPEND: np.where(active, spend_alive, 0.0),
        }))
    return pd.concat(frames, ignore_index=True)
