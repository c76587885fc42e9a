"""Units of custintel.materialization: picking each entity's newest row in the window equals a pandas
brute force whatever the row groups and timestamp units (row groups entirely outside the window are
skipped by their statistics)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custintel import materialization


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 4000
    stamps = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    frame = pd.DataFrame({"customer_id": rng.integers(0, 300, n).astype("int64"), "event_timestamp": stamps,
                          "x": rng.normal(size=n), "y": rng.normal(size=n)})
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)  # row groups by time


def _brute_force(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    window = frame[(frame.event_timestamp >= start) & (frame.event_timestamp <= end)]
    newest = (window.assign(row=window.index).sort_values(["event_timestamp", "row"], ascending=[False, True])
              .groupby("customer_id").head(1))  # ties on the timestamp: the earlier row wins
    return newest.sort_index()  # file order, as newest_rows returns


def _epoch_seconds(column: pd.Series) -> list[float]:
    column = pd.to_datetime(column)
    column = column.dt.tz_convert(None) if column.dt.tz is not None else column
    return (column - pd.Timestamp(0)).dt.total_seconds().tolist()


@pytest.mark.parametrize("unit,tz", [("ns", "UTC"), ("us", "UTC"), ("ms", None), ("s", "UTC")])
def test_newest_rows_skips_row_groups_outside_the_window_and_equals_brute_force(tmp_path, unit, tz,
                                                                               monkeypatch):
    frame = _frame(seed=len(unit))
    path = tmp_path / "offline.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(1, "event_timestamp", table["event_timestamp"].cast(pa.timestamp(unit, tz=tz)))
    pq.write_table(table, path, row_group_size=500)  # 8 row groups, each a stretch of time
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 8, 31, tzinfo=UTC)
    view = SimpleNamespace(features=[SimpleNamespace(name="x"), SimpleNamespace(name="y")])
    job = materialization._SourceJob(str(path), "event_timestamp", None, {}, ["customer_id"], start, end,
                                     [view])

    asked = []
    real = materialization._may_hold
    monkeypatch.setattr(materialization, "_may_hold", lambda *a: asked.append(real(*a)) or asked[-1])
    picked = materialization.newest_rows(job, chunk_rows=128).to_pandas()
    assert len(asked) == 8 and 0 < sum(asked) < 8  # some groups were skipped, some read

    expected = _brute_force(frame, start, end)
    assert picked["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_array_equal(picked[["x", "y"]].to_numpy(), expected[["x", "y"]].to_numpy())
    assert _epoch_seconds(picked["event_timestamp"]) == _epoch_seconds(expected["event_timestamp"])
