"""Bad raw rows are quarantined with reasons; good rows pass unchanged; nothing is dropped."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from custintel.data.generator import generate, write_tables
from custintel.data.validation import validate_raw
from custintel.errors import UserError

END = datetime(2025, 12, 31, tzinfo=UTC)


@pytest.fixture
def raw_dir(tiny_settings, tmp_path):
    raw = tmp_path / "raw"
    write_tables(generate(tiny_settings.data, seed=5), raw)
    return raw


def test_generated_data_is_all_clean(raw_dir, tmp_path):
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    assert all(t["quarantined"] == 0 for t in report.values())
    assert not any((tmp_path / "q").iterdir())
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    clean = pd.read_parquet(tmp_path / "clean" / "orders.parquet")
    assert len(clean) == len(orders)


def test_bad_rows_are_quarantined_with_reasons(raw_dir, tmp_path):
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    good = orders.iloc[0]
    bad = pd.DataFrame([
        {**good, "order_id": 10**9, "amount": -5.0},                                 # negative amount
        {**good, "order_id": 10**9 + 1, "customer_id": 10**8},                        # unknown customer
        {**good, "order_id": 10**9 + 2, "order_ts": pd.Timestamp("2030-01-01", tz="UTC")},  # future
        {**good},                                                                      # duplicate id
        {**good, "order_id": 10**9 + 3, "amount": None},                              # missing amount
    ])
    pd.concat([orders, bad], ignore_index=True).to_parquet(raw_dir / "orders.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["orders"]
    assert report["rows"] == len(orders) + 5
    assert report["quarantined"] == 5 and report["clean"] == len(orders)
    quarantined = pd.read_parquet(tmp_path / "q" / "orders.parquet")
    reasons = " | ".join(quarantined["quarantine_reason"])
    for expected in ("amount: below 0.0", "customer_id: unknown in customers", "order_ts: after the end",
                     "order_id: duplicate id", "amount: missing"):
        assert expected in reasons


def test_unreadable_values_are_quarantined_not_crashing(raw_dir, tmp_path):
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    orders = orders.astype({"amount": str, "order_id": "float64"})  # e.g. read from a CSV
    orders.loc[0, "amount"] = "twelve"
    orders.loc[1, "order_id"] = 1.5
    orders.to_parquet(raw_dir / "orders.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["orders"]
    assert report["quarantined"] == 2
    reasons = pd.read_parquet(tmp_path / "q" / "orders.parquet")["quarantine_reason"].tolist()
    assert reasons == ["amount: not a valid float", "order_id: not a valid int"]


def test_orphans_of_quarantined_parents_are_quarantined_too(raw_dir, tmp_path):
    customers = pd.read_parquet(raw_dir / "customers.parquet")
    customers.loc[0, "signup_ts"] = pd.Timestamp("2031-01-01", tz="UTC")
    customers.to_parquet(raw_dir / "customers.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    n_orphans = int((orders["customer_id"] == customers.loc[0, "customer_id"]).sum())
    assert report["customers"]["quarantined"] == 1
    assert report["orders"]["quarantined"] == n_orphans


def test_missing_column_is_one_clear_error(raw_dir, tmp_path):
    reviews = pd.read_parquet(raw_dir / "reviews.parquet")
    reviews.drop(columns=["rating"]).to_parquet(raw_dir / "reviews.parquet")
    with pytest.raises(UserError, match=r"'reviews' lacks column\(s\) \['rating'\]"):
        validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)


def test_too_many_bad_rows_stop_the_run(tiny_settings):
    from custintel.config import settings_from_dict
    from custintel.paths import DataPaths
    from custintel.steps.ingest import validate

    paths = DataPaths(tiny_settings.data_dir)
    write_tables(generate(tiny_settings.data, seed=5), paths.raw)
    orders = pd.read_parquet(paths.raw / "orders.parquet")
    orders.loc[orders.index[: len(orders) // 10], "amount"] = -1.0  # 10% bad
    orders.to_parquet(paths.raw / "orders.parquet")
    with pytest.raises(UserError, match=r"orders 10\.0%.*data\.max_bad_fraction"):
        validate(tiny_settings, "v1")
    assert not (paths.clean / "validation.json").exists()  # a failed validation is not cached
    raw = tiny_settings.model_dump(mode="json")
    raw["data"]["max_bad_fraction"] = 0.2
    report = validate(settings_from_dict(raw), "v1")
    assert report["tables"]["orders"]["quarantined"] == len(orders) // 10


def test_bad_order_lines_are_quarantined_with_reasons(raw_dir, tmp_path):
    lines = pd.read_parquet(raw_dir / "order_lines.parquet")
    good = lines[~lines["returned"]].iloc[0]
    bad = pd.DataFrame([
        {**good, "line_id": 10**9, "product_id": 10**7},                               # unknown product
        {**good, "line_id": 10**9 + 1, "order_id": 10**8},                             # unknown order
        {**good, "line_id": 10**9 + 2, "quantity": 0},                                 # no quantity
        {**good, "line_id": 10**9 + 3, "discount": 1.5},                               # discount over 100%
        {**good, "line_id": 10**9 + 4, "returned": True},                              # returned, no date
        {**good, "line_id": 10**9 + 5, "return_ts": pd.Timestamp("2030-01-01", tz="UTC")},  # not returned
    ])
    pd.concat([lines, bad], ignore_index=True).to_parquet(raw_dir / "order_lines.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["order_lines"]
    assert report["rows"] == len(lines) + 6
    assert report["quarantined"] == 6 and report["clean"] == len(lines)
    quarantined = pd.read_parquet(tmp_path / "q" / "order_lines.parquet")
    reasons = quarantined.set_index("line_id")["quarantine_reason"]
    assert reasons[10**9] == "product_id: unknown in products"
    assert reasons[10**9 + 1] == "order_id: unknown in orders"
    assert reasons[10**9 + 2] == "quantity: below 1"
    assert reasons[10**9 + 3] == "discount: above 1.0"
    assert reasons[10**9 + 4] == "return_ts: missing though returned"
    assert reasons[10**9 + 5] == "return_ts: set though not returned; return_ts: after the end of history"


def test_lines_of_quarantined_orders_and_products_are_quarantined_too(raw_dir, tmp_path):
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    orders.loc[0, "amount"] = -1.0
    orders.to_parquet(raw_dir / "orders.parquet")
    products = pd.read_parquet(raw_dir / "products.parquet")
    lines = pd.read_parquet(raw_dir / "order_lines.parquet")
    product = lines["product_id"].iloc[-1]
    products.loc[products["product_id"] == product, "price"] = -3.0
    products.to_parquet(raw_dir / "products.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    orphans = (lines["order_id"] == orders.loc[0, "order_id"]) | (lines["product_id"] == product)
    assert report["products"]["quarantined"] == 1 and report["orders"]["quarantined"] == 1
    assert report["order_lines"]["quarantined"] == orphans.sum() > 0
    assert report["order_lines"]["clean"] + report["order_lines"]["quarantined"] == len(lines)


def test_data_from_before_products_and_order_lines_still_validates(raw_dir, tmp_path):
    (raw_dir / "products.parquet").unlink()
    (raw_dir / "order_lines.parquet").unlink()
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    assert set(report) == {"customers", "orders", "events", "reviews"}
    assert all(t["quarantined"] == 0 for t in report.values())


def test_clean_tables_have_the_kinds_dtypes(raw_dir, tmp_path):
    validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    orders = pd.read_parquet(tmp_path / "clean" / "orders.parquet")
    assert {c: str(t) for c, t in orders.dtypes.items()} == {
        "order_id": "Int64", "customer_id": "Int64", "order_ts": "datetime64[ns, UTC]", "amount": "float64",
        "discount": "float64", "category": "object", "n_items": "Int64"}
    lines = pd.read_parquet(tmp_path / "clean" / "order_lines.parquet")
    assert str(lines["returned"].dtype) == "bool" and str(lines["return_ts"].dtype) == "datetime64[ns, UTC]"
    events = pd.read_parquet(tmp_path / "clean" / "events.parquet")
    assert str(events["event_type"].dtype) == "category"  # as generated
    raw = pd.read_parquet(raw_dir / "events.parquet")
    assert events["event_id"].tolist() == raw["event_id"].tolist()  # the file's row order is kept


def test_text_columns_are_read_as_their_kinds(raw_dir, tmp_path):
    orders = pd.read_parquet(raw_dir / "orders.parquet")
    text = orders.astype({c: str for c in ("order_id", "amount", "order_ts")})  # e.g. from a CSV
    text.to_parquet(raw_dir / "orders.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["orders"]
    assert report["quarantined"] == 0
    clean = pd.read_parquet(tmp_path / "clean" / "orders.parquet")
    assert str(clean["order_id"].dtype) == "Int64" and str(clean["order_ts"].dtype) == "datetime64[ns, UTC]"
    assert clean["order_id"].tolist() == orders["order_id"].tolist()
    assert clean["amount"].to_numpy() == pytest.approx(orders["amount"].to_numpy())
    assert (clean["order_ts"] == orders["order_ts"]).all()
    # as pandas did, text timestamps are read in the format of the first one; others are quarantined
    text.loc[0, "order_ts"] = "2024-01-05 10:00:00"
    text.to_parquet(raw_dir / "orders.parquet")
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["orders"]
    assert report["clean"] == 1
    assert report["top_reasons"] == {"order_ts: not a valid timestamp": len(text) - 1}


def test_duplicates_across_batches_and_row_groups(raw_dir, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from custintel.data import validation

    monkeypatch.setattr(validation, "BATCH_ROWS", 64)  # many batches
    events = pd.read_parquet(raw_dir / "events.parquet")
    late = events.iloc[[5, 500]].assign(event_id=[events["event_id"].iloc[900], events["event_id"].iloc[3]])
    shuffled = pd.concat([events.iloc[::-1], late], ignore_index=True)  # ids decrease: no shortcut
    pq.write_table(pa_table(shuffled), raw_dir / "events.parquet", row_group_size=100)
    report = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)["events"]
    assert report["quarantined"] == 2 and report["top_reasons"] == {"event_id: duplicate id": 2}
    bad = pd.read_parquet(tmp_path / "q" / "events.parquet")
    assert bad["event_id"].tolist() == late["event_id"].tolist()  # the later rows, not the first ones
    clean = pd.read_parquet(tmp_path / "clean" / "events.parquet")
    assert clean["event_id"].tolist() == shuffled["event_id"].iloc[:-2].tolist()


def test_agrees_with_the_pandas_implementation_it_replaced(raw_dir, tmp_path):
    from benchmarks.validation_scale import legacy_validate_raw

    orders = pd.read_parquet(raw_dir / "orders.parquet").astype({"amount": object})
    orders.loc[0, "amount"], orders.loc[1, "amount"], orders.loc[2, "amount"] = "x", None, -1.0
    orders.loc[3, "order_id"] = orders.loc[4, "order_id"]
    orders.loc[5, "customer_id"] = 10**8
    orders["amount"] = orders["amount"].astype(str).replace("None", None)
    orders.to_parquet(raw_dir / "orders.parquet")
    lines = pd.read_parquet(raw_dir / "order_lines.parquet")
    lines.loc[0, "returned"] = True
    lines.to_parquet(raw_dir / "order_lines.parquet")
    new = validate_raw(raw_dir, tmp_path / "clean", tmp_path / "q", END)
    old = legacy_validate_raw(raw_dir, tmp_path / "old_clean", tmp_path / "old_q", END)
    assert new == old and new["orders"]["quarantined"] == 5
    for name in new:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "clean" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "old_clean" / f"{name}.parquet"))
    for name in ("orders", "order_lines"):
        new_q = pd.read_parquet(tmp_path / "q" / f"{name}.parquet")
        old_q = pd.read_parquet(tmp_path / "old_q" / f"{name}.parquet")
        assert new_q["quarantine_reason"].tolist() == old_q["quarantine_reason"].tolist()


def pa_table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)
