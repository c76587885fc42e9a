"""The analytic ground truth must agree with what the simulation actually produces."""

import numpy as np
import pandas as pd
import pytest

from custintel.config import settings_from_dict
from custintel.data.generator import MEAN_PAID_FRACTION, TRUTH_TABLE, generate, write_tables
from custintel.data.ground_truth import TRUE_CHURN, TRUE_SPEND, true_scores
from custintel.data.seasonality import daily_multiplier
from custintel.features.point_in_time import compute_labels
from tests.conftest import tiny_params

# Scenarios whose recorded orders are what customers really did (broken_feed corrupts them).
SCENARIOS = ["none", "churn_wave", "price_inflation", "new_customer_surge", "category_shift"]


@pytest.fixture(scope="module", params=SCENARIOS)
def joined(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    raw = tiny_params(tmp / "data", n_customers=6000)
    start = None if request.param == "none" else "2025-03-01"
    raw["data"].update(scenario=request.param, scenario_start=start)
    settings = settings_from_dict(raw)
    data = generate(settings.data, seed=3)
    write_tables(data, tmp / "raw")
    snaps = settings.labelled_snapshots()
    labels = compute_labels(tmp / "raw", snaps, settings.features.horizon_days, settings.snapshot_dates()[-1])
    truth = true_scores(pd.read_parquet(tmp / "raw" / f"{TRUTH_TABLE}.parquet"), snaps,
                        settings.features.horizon_days, settings.data.scenario, settings.data.scenario_start)
    return labels.merge(truth, on=["customer_id", "event_timestamp"], how="inner"), len(labels)


def _two_customers() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2], "signup_ts": pd.Timestamp("2024-01-01", tz="UTC"),
                         "dropout_ts": pd.Timestamp("2030-01-01", tz="UTC"), "rate_per_day": [0.05, 0.01],
                         "hazard_per_day": [0.002, 0.02], "spend_mu": [4.0, 3.0], "spend_sigma": [0.5, 0.4]})


def test_daily_formula_equals_the_closed_form_without_a_scenario_or_seasonality(monkeypatch):
    monkeypatch.setattr("custintel.data.ground_truth.daily_multiplier", lambda days: np.ones(len(days)))
    truth = _two_customers()
    got = true_scores(truth, [pd.Timestamp("2025-01-01", tz="UTC")], horizon_days=90)
    lam, haz, horizon = truth["rate_per_day"], truth["hazard_per_day"], 90
    p_none = haz / (lam + haz) * (1 - np.exp(-(lam + haz) * horizon)) + np.exp(-(lam + haz) * horizon)
    orders = lam * (1 - np.exp(-haz * horizon)) / haz
    spend = orders * np.exp(truth["spend_mu"] + truth["spend_sigma"] ** 2 / 2) * MEAN_PAID_FRACTION
    np.testing.assert_allclose(got[TRUE_CHURN], p_none, rtol=1e-9)
    np.testing.assert_allclose(got[TRUE_SPEND], spend, rtol=1e-9)


def test_seasonal_daily_formula_matches_a_numerical_integration():
    # In continuous time, with l(t) = l s(day of t) and survival S(t) = e^{-ht}:
    #   P(no order in H) = int_0^H h S(t) e^{-L(t)} dt + S(H) e^{-L(H)},  L(t) = int_0^t l(u) du
    #   E[orders in H]   = int_0^H l(t) S(t) dt
    # integrated on a fine grid (midpoints, 2000 steps a day) over a horizon through the Christmas peak.
    truth, horizon, snap = _two_customers(), 90, pd.Timestamp("2024-11-01", tz="UTC")
    got = true_scores(truth, [snap], horizon_days=horizon)
    steps = 2000
    dt = 1 / steps
    t = (np.arange(horizon * steps) + 0.5) * dt  # days since the snapshot
    day = (snap.tz_convert(None).to_datetime64().astype("datetime64[D]").astype("int64") + np.floor(t))
    season = daily_multiplier(day.astype("int64"))
    assert season.max() / season.min() > 1.5  # the horizon really is seasonal
    for i, row in truth.iterrows():
        lam_t, h = row["rate_per_day"] * season, row["hazard_per_day"]
        big_l = np.cumsum(lam_t) * dt - lam_t * dt / 2  # L at the midpoints
        survive = np.exp(-h * t)
        p_none = (h * survive * np.exp(-big_l)).sum() * dt + np.exp(-h * horizon - lam_t.sum() * dt)
        orders = (lam_t * survive).sum() * dt
        value = np.exp(row["spend_mu"] + row["spend_sigma"] ** 2 / 2) * MEAN_PAID_FRACTION
        assert got[TRUE_CHURN][i] == pytest.approx(p_none, rel=1e-6)
        assert got[TRUE_SPEND][i] == pytest.approx(orders * value, rel=1e-6)


def test_truth_covers_every_labelled_row(joined):
    rows, n_labels = joined
    assert len(rows) == n_labels
    assert rows[TRUE_CHURN].between(0, 1).all() and (rows[TRUE_SPEND] >= 0).all()


def test_true_churn_probability_is_calibrated(joined):
    rows, _ = joined
    # Tens of thousands of (customer, snapshot) rows: the mean realised churn matches the mean
    # predicted probability within a percentage point, overall and per probability decile.
    assert rows["churned"].mean() == pytest.approx(rows[TRUE_CHURN].mean(), abs=0.01)
    deciles = rows.groupby(pd.qcut(rows[TRUE_CHURN], 10, duplicates="drop"), observed=True)
    gaps = (deciles["churned"].mean() - deciles[TRUE_CHURN].mean()).abs()
    assert gaps.max() < 0.03


def test_true_expected_spend_matches_realised_spend(joined):
    rows, _ = joined
    assert rows["spend_horizon"].mean() == pytest.approx(rows[TRUE_SPEND].mean(), rel=0.02)
