"""Each drift scenario moves the features it names, in the expected direction."""

from pathlib import Path

import pytest

from custintel.config import settings_from_dict
from custintel.data.generator import generate, write_tables
from custintel.data.scenarios import NEW_CHANNEL, SCENARIOS
from custintel.errors import UserError
from custintel.features.point_in_time import compute_features
from tests.conftest import tiny_params

START = "2025-09-01"
# scenario -> {feature: +1 (should rise) or -1 (should fall)} at the last snapshot
DIRECTIONS = {
    "price_inflation": {"monetary_mean": 1, "spend_90d": 1},
    "new_customer_surge": {"tenure_days": -1, "frequency": -1},
    "churn_wave": {"orders_90d": -1, "spend_90d": -1, "sessions_30d": -1, "recency_days": 1},
    "broken_feed": {"monetary_mean": 1, "spend_90d": 1},
    "category_shift": {"category_entropy": 1, "top_category_share": -1},
}


def _latest_features(tmp_path, scenario: str):
    raw = tiny_params(tmp_path / scenario, n_customers=3000)
    raw["data"].update(scenario=scenario, scenario_start=None if scenario == "none" else START)
    settings = settings_from_dict(raw)
    data = generate(settings.data, seed=11)
    write_tables(data, tmp_path / scenario / "raw")
    return compute_features(tmp_path / scenario / "raw", [settings.snapshot_dates()[-1]]), data


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return _latest_features(tmp_path_factory.mktemp("base"), "none")[0]


@pytest.mark.parametrize("scenario", sorted(DIRECTIONS))
def test_scenario_moves_its_features(scenario, baseline, tmp_path):
    assert set(DIRECTIONS[scenario]) <= set(SCENARIOS[scenario].moves)
    drifted, _ = _latest_features(tmp_path, scenario)
    for feature, sign in DIRECTIONS[scenario].items():
        before, after = baseline[feature].mean(), drifted[feature].mean()
        # a clear move of the mean at the last snapshot: lifetime aggregates (monetary_mean, recency_days,
        # the basket mix) dilute a 4-month-old change, so 5% of the mean or a tenth of a std-dev (4 times
        # the standard error of the difference at 3,000 customers), whichever is smaller
        clear = min(0.05 * abs(before), 0.1 * baseline[feature].std())
        assert sign * (after - before) > clear, (feature, before, after)


def test_surge_customers_come_from_the_new_channel_after_the_start(tmp_path):
    _, data = _latest_features(tmp_path, "new_customer_surge")
    new = data.customers[data.customers["channel"] == NEW_CHANNEL]
    assert len(new) == round(0.4 * 3000)
    assert (new["signup_ts"] >= START).all()


def test_broken_feed_only_breaks_orders_after_the_start(tmp_path):
    _, data = _latest_features(tmp_path, "broken_feed")
    after = data.orders["order_ts"] >= START
    assert data.orders.loc[after, "category"].isna().all()
    assert data.orders.loc[~after, "category"].notna().all()
    assert data.orders.loc[after, "amount"].median() > 20 * data.orders.loc[~after, "amount"].median()


def test_scenario_needs_a_start():
    raw = tiny_params(Path("unused"))
    raw["data"]["scenario"] = "churn_wave"
    with pytest.raises(UserError, match="scenario_start"):
        settings_from_dict(raw)
