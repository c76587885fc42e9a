from datetime import UTC

import pandas as pd
import pandas.testing as pdt

from custintel.data.generator import TABLES, generate, write_tables


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
    assert set(data.events["event_type"]) <= {"view", "add_to_cart", "checkout"}
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
