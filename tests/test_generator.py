from datetime import UTC

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from custintel.data.generator import TABLES, generate, write_tables
from custintel.data.seasonality import MONTH_FACTOR, WEEKDAY_FACTOR, daily_multiplier


def test_generation_is_deterministic(tiny_settings):
    a = generate(tiny_settings.data, seed=7)
    b = generate(tiny_settings.data, seed=7)
    for name in TABLES:
        pdt.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = generate(tiny_settings.data, seed=8)
    assert not a.orders["amount"].equals(c.orders["amount"])


def test_tables_are_consistent(tiny_settings):
    data = generate(tiny_settings.data, seed=1)
    end = pd.Timestamp(tiny_settings.data.end_date, tz="UTC")
    signup = data.customers.set_index("customer_id")["signup_ts"]
    assert data.customers["customer_id"].is_unique
    assert data.orders["order_id"].is_unique
    assert (data.orders["order_ts"] >= signup.reindex(data.orders["customer_id"]).to_numpy()).all()
    assert (data.orders["order_ts"] < end).all()
    assert (data.orders["amount"] > 0).all()
    assert set(data.events["event_type"]) <= {"view", "search", "add_to_cart", "remove_from_cart", "checkout"}
    assert data.reviews["rating"].between(1, 5).all()
    assert data.reviews["order_id"].isin(data.orders["order_id"]).all()
    # latent ground truth is kept apart from the customer table
    assert not {"archetype", "rate_per_day"} & set(data.customers.columns)
    assert {"archetype", "rate_per_day", "hazard_per_day"} <= set(data.truth.columns)


def test_write_tables(tiny_settings, tmp_path):
    counts = write_tables(generate(tiny_settings.data, seed=1), tmp_path / "raw")
    assert counts["customers"] == tiny_settings.data.n_customers
    assert (tmp_path / "raw" / "orders.parquet").is_file()


def test_chunked_generation_keeps_ids_unique_and_keys_consistent(tiny_settings, tmp_path):
    from datetime import datetime

    from custintel.data.generator import generate_chunks
    from custintel.data.validation import validate_raw

    counts = write_tables(generate_chunks(tiny_settings.data, seed=2, chunk_customers=70), tmp_path / "raw")
    assert counts["customers"] == tiny_settings.data.n_customers
    customers = pd.read_parquet(tmp_path / "raw" / "customers.parquet")
    assert customers["customer_id"].tolist() == list(range(1, len(customers) + 1))
    for table, key in (("orders", "order_id"), ("events", "event_id"), ("reviews", "review_id")):
        assert pd.read_parquet(tmp_path / "raw" / f"{table}.parquet")[key].is_unique
    end = datetime.combine(tiny_settings.data.end_date, datetime.min.time(), tzinfo=UTC)
    report = validate_raw(tmp_path / "raw", tmp_path / "clean", tmp_path / "q", end)
    assert all(t["quarantined"] == 0 for t in report.values())  # foreign keys hold across chunks


def test_no_event_after_the_end_of_history(tiny_settings):
    # enough customers that some session starts minutes before the end (validation caught this)
    cfg = tiny_settings.data.model_copy(update={"n_customers": 20000})
    end = pd.Timestamp(cfg.end_date, tz="UTC")
    data = generate(cfg, seed=42)
    for table, column in (("orders", "order_ts"), ("events", "event_ts"), ("reviews", "review_ts")):
        assert (getattr(data, table)[column] <= end).all(), table


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A few thousand customers (well under a second to generate), shared by the checks below."""
    from custintel.config import settings_from_dict
    from tests.conftest import tiny_params

    settings = settings_from_dict(tiny_params(tmp_path_factory.mktemp("big") / "data", n_customers=4000))
    return settings.data, generate(settings.data, seed=9)


def test_order_lines_sum_to_the_order_amount(big):
    _, data = big
    orders, lines = data.orders.set_index("order_id"), data.order_lines
    assert lines["line_id"].is_unique and lines["order_id"].isin(orders.index).all()
    assert orders.index.isin(lines["order_id"]).all()  # every order has lines
    value = lines["quantity"] * lines["unit_price"]
    paid = (value * (1 - lines["discount"])).groupby(lines["order_id"]).sum()
    np.testing.assert_allclose(paid.reindex(orders.index), orders["amount"], rtol=0, atol=0.005 + 1e-9)
    off = (value * lines["discount"]).groupby(lines["order_id"]).sum()
    np.testing.assert_allclose(off.reindex(orders.index), orders["discount"], rtol=0, atol=0.005 + 1e-9)
    assert (lines.groupby("order_id")["quantity"].sum().reindex(orders.index) == orders["n_items"]).all()
    # the order's category is the category of its largest line, a catalogue product of that category
    products = data.products.set_index("product_id")
    assert lines["product_id"].isin(products.index).all()
    largest = lines.assign(value=lines["quantity"] * lines["unit_price"]).sort_values(
        ["order_id", "value"], ascending=[True, False], kind="stable").drop_duplicates("order_id")
    category = products["category"].reindex(largest["product_id"]).to_numpy()
    assert (category == orders["category"].reindex(largest["order_id"]).to_numpy()).mean() > 0.99


def test_products_are_one_global_catalogue(tiny_settings):
    from custintel.data.generator import PRODUCTS_PER_CATEGORY, generate_chunks

    chunks = list(generate_chunks(tiny_settings.data, seed=4, chunk_customers=100))
    assert len(chunks) == 3
    assert len(chunks[0].products) == PRODUCTS_PER_CATEGORY * tiny_settings.data.n_categories
    assert all(c.products.empty for c in chunks[1:])
    assert chunks[0].products["product_id"].is_unique and (chunks[0].products["price"] > 0).all()
    for chunk in chunks:
        assert chunk.order_lines["product_id"].isin(chunks[0].products["product_id"]).all()
    assert generate(tiny_settings.data, seed=4).products.equals(chunks[0].products)


def test_returns_come_after_their_order_and_before_the_end(big):
    cfg, data = big
    end = pd.Timestamp(cfg.end_date, tz="UTC")
    lines = data.order_lines.merge(data.orders[["order_id", "order_ts", "amount"]], on="order_id")
    returned = lines[lines["returned"]]
    assert 0.03 < lines["returned"].mean() < 0.3
    assert returned["return_ts"].notna().all() and lines.loc[~lines["returned"], "return_ts"].isna().all()
    assert (returned["return_ts"] > returned["order_ts"]).all() and (returned["return_ts"] < end).all()
    # the return propensity is a per-customer latent, and it shows
    share = lines.merge(data.orders[["order_id", "customer_id"]]).groupby("customer_id")["returned"].mean()
    truth = data.truth.set_index("customer_id")["return_propensity"].reindex(share.index)
    assert np.corrcoef(share, truth)[0, 1] > 0.3


def test_sessions_have_all_event_types_in_order(big):
    cfg, data = big
    events = data.events
    shares = events["event_type"].value_counts(normalize=True)
    assert set(shares.index) == {"view", "search", "add_to_cart", "remove_from_cart", "checkout"}
    assert shares["view"] > 0.5 and 0.03 < shares["search"] < 0.25 and 0.05 < shares["add_to_cart"] < 0.3
    assert 0.005 < shares["remove_from_cart"] < shares["add_to_cart"]
    assert 0.01 < shares["checkout"] < shares["add_to_cart"]
    per_session = events.groupby("session_id")
    assert (per_session["event_ts"].diff().dropna() > pd.Timedelta(0)).all()  # strictly increasing
    assert (per_session["event_type"].first() == "view").all()
    assert (per_session["customer_id"].nunique() == 1).all()
    # a high cart-abandonment tendency means fewer checkouts per add-to-cart
    truth = data.truth.set_index("customer_id")["cart_abandon"]
    counts = pd.crosstab(events["customer_id"], events["event_type"])
    high = truth.reindex(counts.index) > truth.median()
    rate = counts["checkout"].groupby(high).sum() / counts["add_to_cart"].groupby(high).sum()
    assert rate[True] < 0.7 * rate[False]


def test_seasonal_multiplier_has_mean_one_and_the_intended_shape():
    days = np.arange(np.datetime64("2025-01-01"), np.datetime64("2026-01-01")).astype("int64")
    s = daily_multiplier(days)
    assert s.mean() == pytest.approx(1.0, abs=0.01)
    assert WEEKDAY_FACTOR.mean() == pytest.approx(1.0) and WEEKDAY_FACTOR[5:].min() > WEEKDAY_FACTOR[:5].max()
    assert MONTH_FACTOR[10:].min() > 1.1 and MONTH_FACTOR[6:8].max() < 0.9
    assert daily_multiplier(np.array(["2025-12-06"], dtype="datetime64[D]"))[0] == pytest.approx(
        WEEKDAY_FACTOR[5] * MONTH_FACTOR[11])  # a Saturday in December


def test_weekly_and_seasonal_patterns_show_in_the_orders(big):
    _, data = big
    ts = data.orders["order_ts"]
    weekend = (ts.dt.dayofweek >= 5).mean()
    assert weekend > 2 / 7 + 0.03, weekend  # ~0.335 expected against 0.286 without a weekly pattern
    sessions = data.events.drop_duplicates("session_id")["event_ts"]
    assert (sessions.dt.dayofweek >= 5).mean() > 2 / 7 + 0.03
    month = ts.dt.tz_convert(None).dt.to_period("M").value_counts()
    # December peak above the busier (more customers signed up) January after it; July dip below May
    assert month[pd.Period("2024-12")] > 1.25 * month[pd.Period("2025-01")]
    assert month[pd.Period("2025-07")] < 0.95 * month[pd.Period("2025-05")]


def test_advancing_end_date_within_a_simulated_world_reveals_a_prefix(tiny_settings):
    """With data.simulate_until, the history up to an earlier end_date is exactly the rows of the
    later one that happened before it (a daily feed of one world), and returns come later."""
    from datetime import date

    world = tiny_settings.data.model_copy(update={"simulate_until": date(2025, 12, 31)})
    early = generate(world.model_copy(update={"end_date": date(2025, 11, 1)}), seed=3)
    late = generate(world.model_copy(update={"end_date": date(2025, 12, 1)}), seed=3)
    cut = pd.Timestamp("2025-11-01", tz="UTC")
    assert len(late.orders) > len(early.orders) and len(late.customers) >= len(early.customers)
    for name, ts in (("customers", "signup_ts"), ("orders", "order_ts"), ("events", "event_ts"),
                     ("reviews", "review_ts")):
        before = getattr(late, name)[getattr(late, name)[ts] < cut].reset_index(drop=True)
        pdt.assert_frame_equal(getattr(early, name), before)
        assert (getattr(early, name)[ts] < cut).all()
    lines = early.order_lines.merge(late.order_lines, on="line_id", suffixes=("", "_late"))
    assert len(lines) == len(early.order_lines)
    assert (lines["return_ts"].dropna() < cut).all()
    assert not (lines["returned"] & ~lines["returned_late"]).any()  # nothing is un-returned later
    # without simulate_until the world is simulated up to end_date: a different draw
    assert not generate(tiny_settings.data.model_copy(update={"end_date": date(2025, 11, 1)}),
                        seed=3).orders.equals(early.orders)
