"""Ground truth of the generator: the true churn probability and expected spend of every customer
at every snapshot, from the latent process. Never a feature; used to report how close a model
comes to the achievable.

The oracle knows each customer's latent traits (purchase rate, dropout hazard, spend level) and
whether the customer is still active at the snapshot, but not the future. For an active customer
with rate l and hazard h the remaining active time T is exponential(h) (memoryless), so over a
horizon H:

    P(no order in H)   = h / (h + l) * (1 - exp(-(h + l) H)) + exp(-(h + l) H)
    E[orders in H]     = l * (1 - exp(-h H)) / h
    E[spend in H]      = E[orders in H] * exp(mu + sigma^2 / 2) * MEAN_PAID_FRACTION

A customer who has dropped out buys nothing: probability 1, spend 0.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from custintel.data.generator import MEAN_PAID_FRACTION
from custintel.features.schema import ENTITY_KEY, TIMESTAMP

TRUE_CHURN = "true_churn_prob"
TRUE_SPEND = "true_expected_spend"


def true_scores(truth: pd.DataFrame, snapshots: list[datetime], horizon_days: int) -> pd.DataFrame:
    """One row per (customer signed up before the snapshot, snapshot) with the true scores."""
    frames = []
    for snap in pd.to_datetime(snapshots, utc=True):
        rows = truth[truth["signup_ts"] < snap]
        active = (rows["dropout_ts"] > snap).to_numpy()
        lam = rows["rate_per_day"].to_numpy()
        haz = rows["hazard_per_day"].to_numpy()
        total = (lam + haz) * horizon_days
        p_none = haz / (lam + haz) * (1 - np.exp(-total)) + np.exp(-total)
        orders = lam * (1 - np.exp(-haz * horizon_days)) / haz
        order_value = np.exp(rows["spend_mu"] + rows["spend_sigma"] ** 2 / 2).to_numpy() * MEAN_PAID_FRACTION
        frames.append(pd.DataFrame({
            ENTITY_KEY: rows[ENTITY_KEY].to_numpy(), TIMESTAMP: snap,
            TRUE_CHURN: np.where(active, p_none, 1.0),
            TRUE_SPEND: np.where(active, orders * order_value, 0.0),
        }))
    return pd.concat(frames, ignore_index=True)
