"""Evaluation metrics, the BG/NBD + Gamma-Gamma baseline and the model card's verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custintel.model_card import losses
from training.clv_baseline import bgnbd_gamma_gamma, rfm_summary
from training.metrics import calibration_curve, gain_curve, holdout_metrics, normalized_gini


def test_value_metrics_by_hand():
    spend = np.array([0.0, 0.0, 10.0, 30.0, 60.0])
    perfect = holdout_metrics([1, 1, 0, 0, 0], spend, [0.9, 0.8, 0.2, 0.1, 0.0], spend)
    assert perfect["value_mae"] == 0 and perfect["value_rmse"] == 0 and perfect["value_bias"] == 0
    assert perfect["value_gini"] == pytest.approx(1.0) and perfect["value_decile_mape"] == 0
    assert perfect["value_top10_capture"] == pytest.approx(60 / 100)  # top 10% of 5 rows = 1 row
    assert perfect["churn_auc"] == 1 and perfect["churn_pr_auc"] == 1
    flat = holdout_metrics([1, 1, 0, 0, 0], spend, [0.5] * 5, np.full(5, 25.0))
    assert flat["value_bias"] == pytest.approx(125 / 100 - 1)
    assert flat["value_mae"] == pytest.approx((25 + 25 + 15 + 5 + 35) / 5)
    assert flat["churn_brier"] == pytest.approx(0.25) and flat["churn_log_loss"] == pytest.approx(np.log(2))
    reversed_ = normalized_gini(spend, -spend)
    assert reversed_ == pytest.approx(-1.0)


def test_curves_cover_every_row_and_end_at_the_totals():
    rng = np.random.default_rng(0)
    churned = rng.integers(0, 2, 1000)
    prob = np.clip(churned * 0.6 + rng.uniform(0, 0.4, 1000), 0, 1)
    calibration = calibration_curve(churned, prob)
    assert sum(c["n"] for c in calibration) == 1000
    assert calibration[0]["observed"] < calibration[-1]["observed"]
    spend = rng.gamma(1.0, 10.0, 1000)
    gain = gain_curve(spend, spend)
    assert gain[0]["revenue"] == 0 and gain[-1]["revenue"] == pytest.approx(1.0)
    assert all(a["revenue"] <= b["revenue"] for a, b in zip(gain, gain[1:], strict=False))


def _orders(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "order_ts", "amount"])
    frame["order_ts"] = pd.to_datetime(frame["order_ts"], utc=True, format="ISO8601")
    return frame


def test_rfm_summary_by_hand():
    orders = _orders([(1, "2024-01-01 09:00", 10.0), (1, "2024-01-01 18:00", 5.0),  # same day: one
                      (1, "2024-01-11", 20.0), (1, "2024-01-21", 40.0), (2, "2024-01-05", 7.0),
                      (2, "2024-02-05", 99.0)])  # at the snapshot: not history
    summary = rfm_summary(orders, pd.Timestamp("2024-02-05", tz="UTC"))
    assert summary.loc[1].to_dict() == {"frequency": 2, "recency": 20.0, "T": 35.0, "monetary": 30.0}
    assert summary.loc[2].to_dict() == {"frequency": 0, "recency": 0.0, "T": 31.0, "monetary": 0.0}


def test_bgnbd_ranks_active_buyers_above_lapsed_ones():
    rng = np.random.default_rng(3)
    rows = []
    for customer in range(1, 401):  # half buy every ~2 weeks throughout, half stopped early
        active = customer % 2 == 0
        days = np.cumsum(rng.exponential(14 if active else 20, 30))
        days = days[days < (360 if active else 60)]
        rows += [(customer, pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=float(d)),
                  float(rng.gamma(4, 10))) for d in np.concatenate([[0.0], days])]
    orders = pd.DataFrame(rows, columns=["customer_id", "order_ts", "amount"])
    ids = np.arange(1, 401)
    churn, score, spend = bgnbd_gamma_gamma(orders, pd.Timestamp("2025-01-01", tz="UTC"), 90, ids)
    active = ids % 2 == 0
    assert ((churn >= 0) & (churn <= 1)).all() and (spend >= 0).all()
    assert churn[active].mean() < 0.5 < churn[~active].mean()
    assert score[active].mean() < score[~active].mean() and spend[active].mean() > 3 * spend[~active].mean()


def test_model_card_states_where_the_model_loses():
    from custintel.model_card import METRICS

    model = dict.fromkeys(METRICS, 0.5) | {"churn_auc": 0.80, "value_mae": 10.0, "value_bias": -0.2}
    lightgbm = dict.fromkeys(METRICS, 0.5) | {"churn_auc": 0.82, "value_mae": 12.0, "value_bias": 0.1}
    lines = losses({"model": model, "baselines": {"lightgbm": lightgbm, "bgnbd_gamma_gamma": None}})
    assert lines == ["- **churn ROC-AUC**: the model (0.8) loses to lightgbm 0.82.",
                     "- **aggregate spend bias**: the model (-0.2) loses to lightgbm 0.1."]
