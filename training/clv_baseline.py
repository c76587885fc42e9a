"""BG/NBD + Gamma-Gamma baseline (the `lifetimes` package), fitted per snapshot on the
transaction history strictly before it, like every feature.

- Churn score: minus the expected number of purchases in the horizon (ranks churners; P(alive)
  would rank one-time buyers backwards). Churn probability, for Brier / log-loss / calibration:
  P(no purchase in the horizon) = 1 - P(alive) + P(alive) ((alpha + T) / (alpha + T + H))^(r + x),
  exact under BG/NBD (a live customer drops out only right after a purchase, so with no purchase
  in the horizon the Poisson rate's posterior Gamma(r + x, alpha + T) alone decides).
- Spend: expected purchases x Gamma-Gamma expected average order value.

Purchases on the same day count as one (the model's discrete-time convention); times in days.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

PENALIZER = 0.001  # a little L2 keeps the fits stable on small or odd histories


def rfm_summary(orders: pd.DataFrame, snapshot: pd.Timestamp) -> pd.DataFrame:
    """Per customer with an order before `snapshot`: frequency (repeat purchase days), recency
    (first to last purchase day), T (first purchase day to snapshot), monetary (mean spend of the
    repeat purchase days; 0 without repeats)."""
    history = orders.loc[orders["order_ts"] < snapshot, ["customer_id", "order_ts", "amount"]]
    days = (history.assign(day=history["order_ts"].dt.floor("D"))
            .groupby(["customer_id", "day"], as_index=False)["amount"].sum())
    by_customer = days.groupby("customer_id")["day"]
    first, last = by_customer.min(), by_customer.max()
    summary = pd.DataFrame({
        "frequency": by_customer.size() - 1,
        "recency": (last - first).dt.days.astype(float),
        "T": ((snapshot - first).dt.total_seconds() / 86400.0).astype(float),
    })
    repeats = days[days["day"] > days["customer_id"].map(first)]
    summary["monetary"] = repeats.groupby("customer_id")["amount"].mean().reindex(summary.index).fillna(0.0)
    return summary


def bgnbd_gamma_gamma(orders: pd.DataFrame, snapshot: pd.Timestamp, horizon_days: int,
                      customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(churn probability, churn score, expected spend) for `customer_ids` at `snapshot`.
    Customers without a purchase before the snapshot get the model's prior for a new customer."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    summary = rfm_summary(orders, snapshot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes' numerical warnings on extreme customers
        bg = BetaGeoFitter(penalizer_coef=PENALIZER).fit(
            summary["frequency"], summary["recency"], summary["T"])
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary"] > 0)]
        gg = GammaGammaFitter(penalizer_coef=PENALIZER).fit(repeat["frequency"], repeat["monetary"])
        rows = summary.reindex(customer_ids)
        unseen = rows["frequency"].isna().to_numpy()
        rows = rows.fillna({"frequency": 0.0, "recency": 0.0, "T": 0.0, "monetary": 0.0})
        x, t_x, age = rows["frequency"], rows["recency"], rows["T"]
        expected = bg.conditional_expected_number_of_purchases_up_to_time(horizon_days, x, t_x, age)
        alive = bg.conditional_probability_alive(x, t_x, age)
        params = bg.params_
        quiet = ((params["alpha"] + age) / (params["alpha"] + age + horizon_days)) ** (params["r"] + x)
        churn_prob = 1.0 - alive + alive * quiet
        value = gg.conditional_expected_average_profit(x, rows["monetary"])
    expected, churn_prob, value = (np.asarray(v, dtype=float) for v in (expected, churn_prob, value))
    if unseen.any():  # not yet a buyer at the snapshot: prior expectations
        prior = float(bg.expected_number_of_purchases_up_to_time(horizon_days))
        expected[unseen], churn_prob[unseen] = prior, float(np.exp(-prior))
        value[unseen] = float(np.nanmean(value[~unseen])) if (~unseen).any() else 0.0
    return churn_prob, -expected, expected * value
