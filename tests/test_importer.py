"""Importing a transaction log: column mapping, formats, quarantine of unreadable rows, derived
customers and orders, absent feature groups, and clear errors for what a user can get wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from custintel.config import SourceSection, settings_from_dict
from custintel.data.importer import derive_tables, read_log, resolve_path, write_import
from custintel.data.validation import validate_raw
from custintel.errors import UserError
from custintel.features.point_in_time import available_tables, compute_features
from custintel.features.schema import BASKET, ENGAGEMENT, PURCHASE, groups_for_tables
from custintel.paths import DataPaths
from custintel.steps.ingest import ingest
from tests.conftest import tiny_params

END = datetime(2024, 6, 30, tzinfo=UTC)
LOG = """cust,when,paid,qty,sku
A7,2024-01-05,10.50,1,x
A7,2024-01-05,4.50,2,y
B2,2024-02-01,20.00,1,x
B2,not-a-date,5.00,1,x
C9,2024-03-01,-3.00,1,z
,2024-03-02,7.00,1,z
C9,2024-09-01,8.00,1,z
C9,2024-04-01,12.00,,z
"""


def _source(path, **overrides) -> SourceSection:
    columns = {"customer_id": "cust", "timestamp": "when", "amount": "paid", "quantity": "qty",
               "product": "sku"}
    return SourceSection.model_validate({"kind": "file", "path": str(path), "columns": columns, **overrides})


@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return path


def test_bad_rows_are_quarantined_with_reasons_and_none_lost(tmp_path, log_csv):
    raw, clean, quarantine = tmp_path / "raw", tmp_path / "clean", tmp_path / "q"
    counts = write_import(_source(log_csv), raw)
    assert counts["transactions"] == 8 and counts["customer_ids"] == 3  # text ids get integer ids
    report = validate_raw(raw, clean, quarantine, END)["transactions"]
    assert report["rows"] == report["clean"] + report["quarantined"] == 8
    bad = pd.read_parquet(quarantine / "transactions.parquet")
    reasons = " | ".join(bad["quarantine_reason"])
    for expected in ("timestamp: not a valid timestamp", "amount: below 0.0", "customer_id: missing",
                     "timestamp: after the end of history"):
        assert expected in reasons
    assert len(bad) == 4
    ids = pd.read_parquet(raw / "customer_ids.parquet")
    assert ids.set_index("external_id")["customer_id"].to_dict() == {"A7": 1, "B2": 2, "C9": 3}


def test_orders_and_customers_are_derived_from_clean_rows(tmp_path, log_csv):
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    write_import(_source(log_csv), raw)
    validate_raw(raw, clean, tmp_path / "q", END)
    tables = derive_tables(pd.read_parquet(clean / "transactions.parquet"))
    orders, customers = tables["orders"], tables["customers"]
    # A7's two lines on 2024-01-05 are one order of 15.00 with 3 items; C9's line without a quantity
    # has an unknown item count, not a made-up one.
    a7 = orders[orders["customer_id"] == 1].iloc[0]
    assert len(orders[orders["customer_id"] == 1]) == 1 and a7["amount"] == pytest.approx(15.0)
    assert a7["n_items"] == 3
    assert pd.isna(orders.loc[orders["customer_id"] == 3, "n_items"].iloc[0])
    assert list(orders["order_id"]) == list(range(1, len(orders) + 1))
    assert orders["order_ts"].is_monotonic_increasing
    signup = customers.set_index("customer_id")["signup_ts"]
    assert signup[2] == pd.Timestamp("2024-02-01", tz="UTC")
    assert signup[3] == pd.Timestamp("2024-04-01", tz="UTC")


def test_csv_whitespace_text_and_parquet_read_the_same(tmp_path, log_csv):
    frame = pd.read_csv(log_csv, dtype=str).dropna()  # whitespace text cannot hold empty fields
    csv, text, parquet = tmp_path / "full.csv", tmp_path / "log.txt", tmp_path / "log.parquet"
    frame.to_csv(csv, index=False)
    text.write_text(frame.to_string(index=False))
    frame.to_parquet(parquet)
    from_csv = read_log(_source(csv))
    assert len(from_csv) == 6
    assert list(from_csv.columns) == ["customer_id", "timestamp", "amount", "quantity", "product", "category"]
    assert from_csv["category"].isna().all()  # not mapped: absent, not invented
    for other in (read_log(_source(text)), read_log(_source(parquet))):  # formats picked by extension
        pd.testing.assert_frame_equal(from_csv, other.reset_index(drop=True), check_dtype=False)


def test_timestamp_format_is_applied_and_named_in_reasons(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("id date amount\n1 20240105 3.0\n2 2024-01-06 4.0\n")
    source = SourceSection.model_validate({"kind": "file", "path": str(path), "timestamp_format": "%Y%m%d",
                                           "columns": {"timestamp": "date", "customer_id": "id"}})
    raw = tmp_path / "raw"
    write_import(source, raw)
    from custintel.data.importer import timestamp_formats

    report = validate_raw(raw, tmp_path / "clean", tmp_path / "q", END, timestamp_formats(raw))
    assert report["transactions"]["clean"] == 1
    assert "not a valid timestamp in format %Y%m%d" in next(iter(report["transactions"]["top_reasons"]))


def test_mapping_errors_name_the_field_and_the_columns(tmp_path, log_csv):
    with pytest.raises(UserError, match=r"source.columns.amount \('price'\).*'cust', 'when', 'paid'"):
        read_log(_source(log_csv, columns={"customer_id": "cust", "timestamp": "when", "amount": "price"}))
    with pytest.raises(UserError, match="is not a file"):
        resolve_path(str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="package 'no_such_pkg' is not installed"):
        resolve_path("package:no_such_pkg/data.csv")
    with pytest.raises(UserError, match="has no file"):
        resolve_path("package:lifetimes/datasets/missing.txt")
    with pytest.raises(UserError, match="source.path is required when source.kind is .file."):
        settings_from_dict({"source": {"kind": "file"}})


def test_the_real_log_ships_inside_an_installed_package():
    path = resolve_path("package:lifetimes/datasets/CDNOW_master.txt")
    source = SourceSection.model_validate({
        "kind": "file", "path": "package:lifetimes/datasets/CDNOW_master.txt", "format": "whitespace",
        "columns": {"customer_id": "customer_id", "timestamp": "date", "amount": "dollar_value",
                    "quantity": "number_of_cds"}})
    frame = read_log(source)
    assert path.is_file() and len(frame) == 69659 and frame["customer_id"].nunique() == 23570
    assert frame["customer_id"].iloc[0] == "00001"  # read as text: leading zeros survive


def test_imported_data_has_purchase_features_only(tmp_path, log_csv):
    raw, clean = tmp_path / "raw", tmp_path / "clean"
    write_import(_source(log_csv), raw)
    validate_raw(raw, clean, tmp_path / "q", END)
    for name, frame in derive_tables(pd.read_parquet(clean / "transactions.parquet")).items():
        frame.to_parquet(clean / f"{name}.parquet", index=False)
    assert groups_for_tables(available_tables(clean)) == [PURCHASE]
    features = compute_features(clean, [datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)])
    assert list(features.columns[2:]) == list(PURCHASE.features)  # no sessions or reviews columns at all
    # discounts, returns and categories are unknown in such a log: absent, not a made-up 0
    assert not set(features.columns) & {*BASKET.features, *ENGAGEMENT.features}
    assert features[list(PURCHASE.features)].notna().all().all()
    may = features[features["event_timestamp"] == pd.Timestamp("2024-05-01", tz="UTC")]
    may = may.set_index("customer_id")
    assert may.loc[1, "frequency"] == 1 and may.loc[1, "monetary_mean"] == pytest.approx(15.0)
    assert may.loc[3, "frequency"] == 1  # C9: the refund row was quarantined, its April order counts
    # A7 bought once, on 2024-01-05: the open interval since then stands in for the mean gap
    assert may.loc[1, "interpurchase_mean_days"] == pytest.approx(117.0)
    assert may.loc[1, "days_since_first_order"] == pytest.approx(117.0)
    assert may.loc[3, "spend_30d"] == pytest.approx(12.0) and may.loc[3, "orders_trend_30d"] == 1


def test_validation_drops_tables_of_a_previous_version(tmp_path, log_csv):
    clean = tmp_path / "clean"
    clean.mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(clean / "events.parquet")
    write_import(_source(log_csv), tmp_path / "raw")
    validate_raw(tmp_path / "raw", clean, tmp_path / "q", END)
    assert not (clean / "events.parquet").exists()


def test_ingest_versions_the_log_and_refuses_dates_it_does_not_cover(tmp_path, log_csv):
    raw = tiny_params(tmp_path / "data")
    raw["source"] = {"kind": "file", "path": str(log_csv), "columns": _source(log_csv).columns.model_dump()}
    with pytest.raises(UserError, match=r"transactions 37.5%.*data.max_bad_fraction is 5.0%"):
        ingest(settings_from_dict(raw))  # 3 of 8 rows are unreadable
    raw["data"]["max_bad_fraction"] = 0.6
    with pytest.raises(UserError, match=r"runs from 2024-01-05 to 2024-09-01.*data.end_date to 2024-09-01"):
        ingest(settings_from_dict(raw))  # params.yaml's default history ends in 2025
    raw["data"].update(start_date="2024-01-01", end_date="2024-04-30")
    raw["features"]["first_snapshot"] = "2024-02-15"
    settings = settings_from_dict(raw)
    first = ingest(settings)  # the version was made by the first, refused, call and is reused
    assert not first["created"] and first["quarantined_rows"] == 4  # the future row joins the bad three
    from custintel.data.catalogue import list_versions

    catalogued = list_versions(DataPaths(settings.data_dir).dvc_repo)
    assert [v["version"] for v in catalogued] == [first["data_version"]]
    report = json.loads((DataPaths(settings.data_dir).clean / "validation.json").read_text())
    assert report["derived"] == {"customers": 3, "orders": 3}
