"""The analytic ground truth must agree with what the simulation actually produces."""

import pandas as pd
import pytest

from custintel.config import settings_from_dict
from custintel.data.generator import TRUTH_TABLE, generate, write_tables
from custintel.data.ground_truth import TRUE_CHURN, TRUE_SPEND, true_scores
from custintel.features.point_in_time import compute_labels
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    settings = settings_from_dict(tiny_params(tmp / "data", n_customers=6000))
    data = generate(settings.data, seed=3)
    write_tables(data, tmp / "raw")
    snaps = settings.labelled_snapshots()
    labels = compute_labels(tmp / "raw", snaps, settings.features.horizon_days, settings.snapshot_dates()[-1])
    truth = true_scores(pd.read_parquet(tmp / "raw" / f"{TRUTH_TABLE}.parquet"), snaps,
                        settings.features.horizon_days)
    return labels.merge(truth, on=["customer_id", "event_timestamp"], how="inner"), len(labels)


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
