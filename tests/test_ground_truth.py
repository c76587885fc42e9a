"""The analytic ground truth must agree with what the simulation actually produces."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from custintel.config import settings_from_dict
from custintel.data.generator import MEAN_PAID_FRACTION, TRUTH_TABLE, generate, write_tables
from custintel.data.ground_truth import (
    ALIVE_PROB,
    CLAIRVOYANT_CHURN,
    CLAIRVOYANT_SPEND,
    LAST_ORDER,
    TRUE_CHURN,
    TRUE_SPEND,
    _epoch_day,
    alive_posterior,
    true_scores,
)
from custintel.data.scenarios import SCENARIOS as SPECS
from custintel.data.seasonality import daily_multiplier
from custintel.features.point_in_time import compute_labels
from tests.conftest import tiny_params

# Scenarios whose recorded orders are what customers really did (broken_feed corrupts them).
SCENARIOS = ["none", "churn_wave", "price_inflation", "new_customer_surge", "category_shift"]
# (churn probability, expected spend) of the Bayes-optimal oracle and of the clairvoyant one
ORACLES = {"bayes": (TRUE_CHURN, TRUE_SPEND), "clairvoyant": (CLAIRVOYANT_CHURN, CLAIRVOYANT_SPEND)}


@pytest.fixture(scope="module", params=SCENARIOS)
def joined(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    raw = tiny_params(tmp / "data", n_customers=6000)
    start = None if request.param == "none" else "2025-03-01"  # crosses the horizons of some snapshots
    raw["data"].update(scenario=request.param, scenario_start=start)
    settings = settings_from_dict(raw)
    data = generate(settings.data, seed=3)
    write_tables(data, tmp / "raw")
    snaps = settings.labelled_snapshots()
    labels = compute_labels(tmp / "raw", snaps, settings.features.horizon_days, settings.snapshot_dates()[-1])
    latent = pd.read_parquet(tmp / "raw" / f"{TRUTH_TABLE}.parquet")
    orders = pd.read_parquet(tmp / "raw" / "orders.parquet", columns=["customer_id", "order_ts"])
    truth = true_scores(latent, snaps, settings.features.horizon_days, settings.data.scenario,
                        settings.data.scenario_start, orders=orders)
    rows = labels.merge(truth, on=["customer_id", "event_timestamp"], how="inner")
    dropout = rows["customer_id"].map(latent.set_index("customer_id")["dropout_ts"])
    return rows.assign(alive=(dropout > rows["event_timestamp"]).astype(int)), len(labels)


def _two_customers() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2], "signup_ts": pd.Timestamp("2024-01-01", tz="UTC"),
                         "dropout_ts": pd.Timestamp("2030-01-01", tz="UTC"), "rate_per_day": [0.05, 0.01],
                         "hazard_per_day": [0.002, 0.02], "spend_mu": [4.0, 3.0], "spend_sigma": [0.5, 0.4]})


def _signups(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[["customer_id"]].assign(order_ts=truth["signup_ts"])


def test_daily_formula_equals_the_closed_form_without_a_scenario_or_seasonality(monkeypatch):
    monkeypatch.setattr("custintel.data.ground_truth.daily_multiplier", lambda days: np.ones(len(days)))
    truth = _two_customers()
    got = true_scores(truth, [pd.Timestamp("2025-01-01", tz="UTC")], horizon_days=90, orders=_signups(truth))
    lam, haz, horizon = truth["rate_per_day"], truth["hazard_per_day"], 90
    p_none = haz / (lam + haz) * (1 - np.exp(-(lam + haz) * horizon)) + np.exp(-(lam + haz) * horizon)
    orders = lam * (1 - np.exp(-haz * horizon)) / haz
    spend = orders * np.exp(truth["spend_mu"] + truth["spend_sigma"] ** 2 / 2) * MEAN_PAID_FRACTION
    # both are still active: the clairvoyant scores are the conditionals on being active
    np.testing.assert_allclose(got[CLAIRVOYANT_CHURN], p_none, rtol=1e-9)
    np.testing.assert_allclose(got[CLAIRVOYANT_SPEND], spend, rtol=1e-9)
    # the Bayes-optimal ones mix them with "dropped out" by the posterior of being active
    alive = got[ALIVE_PROB]
    np.testing.assert_allclose(got[TRUE_CHURN], 1 - alive + alive * p_none, rtol=1e-9)
    np.testing.assert_allclose(got[TRUE_SPEND], alive * spend, rtol=1e-9)


def test_alive_posterior_equals_the_closed_form_without_a_scenario_or_seasonality(monkeypatch):
    # P(alive | last order D days ago) = 1 / (1 + h/(l+h) (e^{(l+h)D} - 1)); D with partial first days,
    # a last order exactly at midnight, and long gaps
    monkeypatch.setattr("custintel.data.ground_truth.daily_multiplier", lambda days: np.ones(len(days)))
    lam = np.array([0.05, 0.01, 0.3, 0.05, 0.05, 0.5])
    haz = np.array([0.002, 0.02, 0.01, 0.002, 0.05, 0.001])
    gap = np.array([10.3, 0.5, 1.0, 300.0, 700.25, 1e-4])
    snap = 20_000
    got = alive_posterior(lam, haz, snap - gap, snap, SPECS["none"], None)
    closed = 1 / (1 + haz / (lam + haz) * np.expm1((lam + haz) * gap))
    np.testing.assert_allclose(got, closed, rtol=1e-9)
    # through true_scores, from the orders table
    truth = _two_customers()
    snap_ts = pd.Timestamp("2025-01-01", tz="UTC")
    day = pd.Timedelta(days=1)
    later = [snap_ts - 40.6 * day, snap_ts - 7 / 24 * day, snap_ts + 3 * day]  # the last is after it
    orders = pd.concat([_signups(truth), pd.DataFrame({"customer_id": [1, 2, 2], "order_ts": later})])
    got = true_scores(truth, [snap_ts], horizon_days=90, orders=orders)
    gap = np.array([40.6, 7 / 24])
    lam, haz = truth["rate_per_day"].to_numpy(), truth["hazard_per_day"].to_numpy()
    np.testing.assert_allclose(got[ALIVE_PROB], 1 / (1 + haz / (lam + haz) * np.expm1((lam + haz) * gap)),
                               rtol=1e-9)
    assert (snap_ts - got[LAST_ORDER]).dt.total_seconds().tolist() == pytest.approx((gap * 86400).tolist())


def test_alive_posterior_matches_a_numerical_integration_with_seasonality_and_a_churn_wave():
    # A = S(t_l->s) e^{-L(t_l->s)}, D = int_{t_l}^{s} h(u) S(t_l->u) e^{-L(t_l->u)} du on a fine grid
    # (midpoints, 4000 steps a day), with the hazard x4 from a start inside the gap
    start = pd.Timestamp("2024-10-01", tz="UTC")
    snap = _epoch_day(pd.Timestamp("2024-12-15", tz="UTC"))
    lam, haz = np.array([0.05, 0.01, 0.3, 0.05, 0.05]), np.array([0.002, 0.02, 0.01, 0.002, 0.05])
    last = snap - np.array([10.3, 0.5, 1.0, 100.7, 150.25])
    got = alive_posterior(lam, haz, last, snap, SPECS["churn_wave"], start)
    for i in range(len(lam)):
        n = int(np.ceil((snap - last[i]) * 4000))
        du = (snap - last[i]) / n
        day = np.floor(last[i] + (np.arange(n) + 0.5) * du).astype(np.int64)
        k = lam[i] * daily_multiplier(day) + haz[i] * np.where(day >= _epoch_day(start), 4.0, 1.0)
        g = np.cumsum(k) * du - k * du / 2
        alive = np.exp(-k.sum() * du)
        dropped = ((k - lam[i] * daily_multiplier(day)) * np.exp(-g)).sum() * du
        assert got[i] == pytest.approx(alive / (alive + dropped), rel=1e-5)


def test_seasonal_daily_formula_matches_a_numerical_integration():
    # In continuous time, with l(t) = l s(day of t) and survival S(t) = e^{-ht}, for a customer
    # active at the snapshot:
    #   P(no order in H) = int_0^H h S(t) e^{-L(t)} dt + S(H) e^{-L(H)},  L(t) = int_0^t l(u) du
    #   E[orders in H]   = int_0^H l(t) S(t) dt
    # integrated on a fine grid (midpoints, 2000 steps a day) over a horizon through the Christmas peak.
    truth, horizon, snap = _two_customers(), 90, pd.Timestamp("2024-11-01", tz="UTC")
    got = true_scores(truth, [snap], horizon_days=horizon, orders=_signups(truth))
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
        assert got[CLAIRVOYANT_CHURN][i] == pytest.approx(p_none, rel=1e-6)
        assert got[CLAIRVOYANT_SPEND][i] == pytest.approx(orders * value, rel=1e-6)


def test_truth_covers_every_labelled_row(joined):
    rows, n_labels = joined
    assert len(rows) == n_labels
    for churn, spend in ORACLES.values():
        assert rows[churn].between(0, 1).all() and (rows[spend] >= 0).all()
    assert rows[ALIVE_PROB].between(0, 1).all()
    assert (rows[LAST_ORDER] < rows["event_timestamp"]).all()


def _assert_calibrated(rows: pd.DataFrame, outcome: str, predicted: str) -> None:
    # Tens of thousands of (customer, snapshot) rows: the mean realised outcome matches the mean
    # predicted probability within a percentage point, overall and per probability decile.
    assert rows[outcome].mean() == pytest.approx(rows[predicted].mean(), abs=0.01)
    deciles = rows.groupby(pd.qcut(rows[predicted], 10, duplicates="drop"), observed=True)
    gaps = (deciles[outcome].mean() - deciles[predicted].mean()).abs()
    assert gaps.max() < 0.03


@pytest.mark.parametrize("oracle", ORACLES)
def test_true_churn_probability_is_calibrated(joined, oracle):
    _assert_calibrated(joined[0], "churned", ORACLES[oracle][0])


def test_alive_posterior_is_calibrated_against_the_latent_state(joined):
    _assert_calibrated(joined[0], "alive", ALIVE_PROB)


@pytest.mark.parametrize("oracle", ORACLES)
def test_true_expected_spend_matches_realised_spend(joined, oracle):
    rows, _ = joined
    assert rows["spend_horizon"].mean() == pytest.approx(rows[ORACLES[oracle][1]].mean(), rel=0.02)


def test_bayes_optimal_auc_lies_between_recency_and_the_clairvoyant(joined):
    rows, _ = joined
    recency = (rows["event_timestamp"] - rows[LAST_ORDER]).dt.total_seconds()
    auc = {name: roc_auc_score(rows["churned"], score) for name, score in
           {"recency": recency, "bayes": rows[TRUE_CHURN], "clairvoyant": rows[CLAIRVOYANT_CHURN]}.items()}
    assert auc["recency"] + 0.005 < auc["bayes"] < auc["clairvoyant"] - 0.005, auc
