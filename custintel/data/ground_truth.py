"""Ground truth of the generator: the true churn probability and expected spend of every customer
at every snapshot, from the latent process. Never a feature; used to report how close a model
comes to the achievable.

The oracle knows each customer's latent traits (purchase rate l, dropout hazard h, spend level)
and whether the customer is still active at the snapshot, but not the future. While active,
orders are an inhomogeneous Poisson process with rate l x s(day), the weekly and seasonal
multiplier of `custintel.data.seasonality`; the remaining active time T has hazard h (times the
scenario's multiplier after its start). Per day j of the horizon, with l_j = l s_j, L_j = the sum
of l_k over the days k < j, and S_j = P(still active at the start of day j):

    P(no order in H) = sum_j S_j e^{-L_j} h_j / (h_j + l_j) (1 - e^{-(h_j + l_j)}) + S_H e^{-L_H}
    E[spend in H]    = sum_j l_j f_j S_j (1 - e^{-h_j}) / h_j  x  exp(mu + sigma^2 / 2) x paid fraction

which is exact for rates, hazards and price factors constant within a day (snapshots and
scenarios start at midnight UTC, and s changes only at midnight). Without seasonality (s = 1)
and a constant hazard it reduces to P = h/(h+l)(1 - e^{-(h+l)H}) + e^{-(h+l)H} and
E[orders] = l (1 - e^{-hH}) / h. A customer who has dropped out buys nothing. The broken-feed
scenario corrupts the recorded amounts, not what customers spend, so its truth is unchanged.
Spend is what orders.amount records: gross of returns (a returned line does not lower it).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from custintel.data.generator import MEAN_PAID_FRACTION
from custintel.data.scenarios import SCENARIOS, Scenario
from custintel.data.seasonality import daily_multiplier
from custintel.features.schema import ENTITY_KEY, TIMESTAMP

TRUE_CHURN = "true_churn_prob"
TRUE_SPEND = "true_expected_spend"


def _daily_effects(snap: pd.Timestamp, horizon_days: int, scenario: Scenario,
                   start: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per day of the horizon: hazard multiplier, price factor and seasonal rate multiplier s_j."""
    day_starts = snap + pd.to_timedelta(np.arange(horizon_days), unit="D")
    after = (day_starts >= start) if start is not None else np.zeros(horizon_days, dtype=bool)
    season = daily_multiplier(day_starts.tz_convert(None).to_numpy().astype("datetime64[D]"))
    return (np.where(after, scenario.hazard_multiplier, 1.0), np.where(after, scenario.price_factor, 1.0),
            season)


def true_scores(truth: pd.DataFrame, snapshots: list[datetime], horizon_days: int,
                scenario: str = "none", scenario_start: datetime | None = None) -> pd.DataFrame:
    """One row per (customer signed up before the snapshot, snapshot) with the true scores."""
    spec = SCENARIOS[scenario]
    start = pd.Timestamp(scenario_start) if scenario != "none" and scenario_start is not None else None
    if start is not None and start.tzinfo is None:
        start = start.tz_localize("UTC")
    frames = []
    for snap in pd.to_datetime(snapshots, utc=True):
        rows = truth[truth["signup_ts"] < snap]
        active = (rows["dropout_ts"] > snap).to_numpy()
        multiplier, price, season = _daily_effects(snap, horizon_days, spec, start)
        lam = rows["rate_per_day"].to_numpy()[:, None] * season[None, :]  # l_j, (customers, days)
        haz = rows["hazard_per_day"].to_numpy()[:, None] * multiplier[None, :]  # h_j
        cum = np.cumsum(haz, axis=1)
        survive = np.exp(-np.concatenate([np.zeros((len(rows), 1)), cum[:, :-1]], axis=1))  # S_j
        cum_lam = np.cumsum(lam, axis=1)
        no_order = np.exp(-np.concatenate([np.zeros((len(rows), 1)), cum_lam[:, :-1]], axis=1))  # e^{-L_j}
        p_none = (survive * no_order * haz / (haz + lam) * (1 - np.exp(-(haz + lam)))).sum(axis=1)
        p_none += np.exp(-cum[:, -1] - cum_lam[:, -1])
        orders = (lam * price[None, :] * survive * (1 - np.exp(-haz)) / haz).sum(axis=1)
        order_value = np.exp(rows["spend_mu"] + rows["spend_sigma"] ** 2 / 2).to_numpy() * MEAN_PAID_FRACTION
        frames.append(pd.DataFrame({
            ENTITY_KEY: rows[ENTITY_KEY].to_numpy(), TIMESTAMP: snap,
            TRUE_CHURN: np.where(active, p_none, 1.0),
            TRUE_SPEND: np.where(active, orders * order_value, 0.0),
        }))
    return pd.concat(frames, ignore_index=True)
