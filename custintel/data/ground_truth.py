"""Ground truth of the generator: the true churn probability and expected spend of every customer
at every snapshot, from the latent process. Never a feature; used to report how close a model
comes to the achievable.

The oracle knows each customer's latent traits (purchase rate l, dropout hazard h, spend level)
and whether the customer is still active at the snapshot, but not the future. While active,
orders are Poisson(l); the remaining active time T has hazard h (times the scenario's multiplier
after its start). Per day j of the horizon, with S_j = P(still active at the start of day j):

    P(no order in H) = sum_j S_j e^{-l j} h_j / (h_j + l) (1 - e^{-(h_j + l)}) + S_H e^{-l H}
    E[spend in H]    = sum_j l f_j S_j (1 - e^{-h_j}) / h_j  x  exp(mu + sigma^2 / 2) x paid fraction

which is exact for hazards and price factors constant within a day (scenarios start at midnight),
and for a constant hazard reduces to P = h/(h+l)(1 - e^{-(h+l)H}) + e^{-(h+l)H} and
E[orders] = l (1 - e^{-hH}) / h. A customer who has dropped out buys nothing. The broken-feed
scenario corrupts the recorded amounts, not what customers spend, so its truth is unchanged.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from custintel.data.generator import MEAN_PAID_FRACTION
from custintel.data.scenarios import SCENARIOS, Scenario
from custintel.features.schema import ENTITY_KEY, TIMESTAMP

TRUE_CHURN = "true_churn_prob"
TRUE_SPEND = "true_expected_spend"


def _daily_effects(snap: pd.Timestamp, horizon_days: int, scenario: Scenario,
                   start: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray]:
    day_starts = snap + pd.to_timedelta(np.arange(horizon_days), unit="D")
    after = (day_starts >= start) if start is not None else np.zeros(horizon_days, dtype=bool)
    return (np.where(after, scenario.hazard_multiplier, 1.0), np.where(after, scenario.price_factor, 1.0))


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
        lam = rows["rate_per_day"].to_numpy()[:, None]
        multiplier, price = _daily_effects(snap, horizon_days, spec, start)
        haz = rows["hazard_per_day"].to_numpy()[:, None] * multiplier[None, :]  # (customers, days)
        cum = np.cumsum(haz, axis=1)
        survive = np.exp(-np.concatenate([np.zeros((len(rows), 1)), cum[:, :-1]], axis=1))  # S_j
        day = np.arange(horizon_days)[None, :]
        p_none = (survive * np.exp(-lam * day) * haz / (haz + lam) * (1 - np.exp(-(haz + lam)))).sum(axis=1)
        p_none += np.exp(-cum[:, -1] - lam[:, 0] * horizon_days)
        orders = (lam * price[None, :] * survive * (1 - np.exp(-haz)) / haz).sum(axis=1)
        order_value = np.exp(rows["spend_mu"] + rows["spend_sigma"] ** 2 / 2).to_numpy() * MEAN_PAID_FRACTION
        frames.append(pd.DataFrame({
            ENTITY_KEY: rows[ENTITY_KEY].to_numpy(), TIMESTAMP: snap,
            TRUE_CHURN: np.where(active, p_none, 1.0),
            TRUE_SPEND: np.where(active, orders * order_value, 0.0),
        }))
    return pd.concat(frames, ignore_index=True)
