"""Segments keep their identity across refits; value tiers are the same in training and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.segments import Segmenter, fit_segmenter
from training.tiers import INACTIVE, ValueTiers, fit_tiers, tier_report

NAMES = ["recency_days", "frequency", "spend_90d", "tenure_days"]
CENTRES = {  # log-space blob centres: one row per behaviour
    "loyal": [1.0, 3.0, 6.0, 6.0], "lapsed": [5.5, 1.0, 0.5, 6.0], "new": [1.5, 0.3, 3.0, 2.0],
    "big": [0.3, 5.0, 9.5, 7.5], "browser": [3.5, 0.5, 1.0, 4.0],
}


def _customers(kinds: dict[str, int], seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    blocks, truth = [], []
    for kind, n in kinds.items():
        blocks.append(np.expm1(np.asarray(CENTRES[kind]) + rng.normal(0, 0.35, (n, len(NAMES)))))
        truth += [kind] * n
    return pd.DataFrame(np.vstack(blocks), columns=NAMES), np.asarray(truth)


def _scores(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    churn = 1 / (1 + np.exp(-(np.log1p(frame["recency_days"]) - 3)))
    return churn.to_numpy(), frame["spend_90d"].to_numpy()


def _fit(frame, seed, previous=None, k=None):
    churn, spend = _scores(frame)
    return fit_segmenter(frame, NAMES, seed, k, (3, 7), previous, 0.5, churn, spend)


def test_refit_with_another_seed_keeps_ids_where_raw_kmeans_labels_do_not():
    frame, _ = _customers(dict.fromkeys(CENTRES, 300), seed=0)
    first, ids_first = _fit(frame, seed=1)
    second, ids_second = _fit(frame, seed=7, previous=first)
    assert len(first.ids) == 5  # silhouette finds the five behaviours
    assert np.mean(ids_first == ids_second) >= 0.95
    from sklearn.cluster import KMeans

    raw = [KMeans(5, n_init=10, random_state=s).fit(first.space(frame)).labels_ for s in (1, 7)]
    assert np.mean(raw[0] == raw[1]) < 0.5  # what matching repairs: raw K-Means ids are arbitrary
    assert second.names == first.names and second.next_id == first.next_id


def test_a_new_behaviour_gets_a_new_id_and_a_vanished_one_is_retired():
    before, _ = _customers({"loyal": 300, "lapsed": 300, "new": 300, "browser": 300}, seed=0)
    old, old_ids = _fit(before, seed=1, k=4)
    after, truth = _customers({"loyal": 300, "lapsed": 300, "new": 300, "big": 300}, seed=1)
    new, new_ids = _fit(after, seed=2, previous=old, k=4)
    kept = {kind: pd.Series(new_ids[truth == kind]).mode()[0] for kind in ("loyal", "lapsed", "new")}
    before_ids = {kind: pd.Series(old_ids[np.repeat(["loyal", "lapsed", "new", "browser"], 300) == kind]
                                  ).mode()[0] for kind in ("loyal", "lapsed", "new", "browser")}
    assert all(kept[k] == before_ids[k] for k in kept)
    big = pd.Series(new_ids[truth == "big"]).mode()[0]
    assert big >= old.next_id and big not in old.ids  # fresh id, never a reused one
    assert before_ids["browser"] in new.retired


def test_a_split_segment_keeps_its_id_on_the_larger_part():
    before, _ = _customers({"loyal": 600, "lapsed": 300, "new": 300}, seed=0)
    old, _ = _fit(before, seed=1, k=3)
    loyal_id = pd.Series(old.assign(before.iloc[:600])).mode()[0]
    after = before.copy()
    after.loc[:199, "tenure_days"] = np.expm1(3.0)  # a third of the loyal customers now look new-ish
    after.loc[:199, "frequency"] = np.expm1(0.5)
    new, new_ids = _fit(after, seed=1, previous=old, k=4)
    assert pd.Series(new_ids[200:600]).mode()[0] == loyal_id
    assert len(set(new.ids) - set(old.ids)) == 1


def test_segmenter_round_trips(tmp_path):
    frame, _ = _customers(dict.fromkeys(CENTRES, 100), seed=0)
    seg, ids = _fit(frame, seed=1, k=5)
    seg.save(tmp_path)
    loaded = Segmenter.load(tmp_path)
    assert (loaded.assign(frame) == ids).all() and loaded.names == seg.names
    assert all(isinstance(name, str) and name for name in seg.names.values())


def test_tiers_are_identical_after_save_and_load_and_rank_actual_spend(tmp_path):
    rng = np.random.default_rng(0)
    predicted = np.concatenate([np.zeros(100), rng.gamma(2.0, 50.0, 900)])
    actual = predicted * rng.lognormal(0, 0.3, 1000)
    tiers = fit_tiers(predicted, ("low", "mid", "high"), inactive_below=1.0, quantiles=(0.5, 0.8))
    tiers.save(tmp_path)
    loaded = ValueTiers.load(tmp_path)
    assert loaded == tiers and (loaded.assign(predicted) == tiers.assign(predicted)).all()
    labels = tiers.assign(predicted)
    assert (labels[:100] == INACTIVE).all() and (labels == "high").sum() == pytest.approx(180, abs=2)
    report = tier_report(tiers, predicted, actual)
    means = [row["mean_actual_spend"] for row in report]
    assert [row["tier"] for row in report] == ["inactive", "low", "mid", "high"] and means == sorted(means)
    assert sum(row["customers"] for row in report) == 1000
    absolute = fit_tiers(predicted, ("low", "high"), 1.0, thresholds=(100.0,))
    assert absolute.assign(np.array([0.5, 50.0, 150.0])).tolist() == [INACTIVE, "low", "high"]
    with pytest.raises(ValueError, match="need 1 cut points"):
        fit_tiers(predicted, ("low", "high"), 1.0, quantiles=(0.3, 0.6))


def test_slack_summary_names_sizes_notable_migrations_and_revenue_at_risk():
    from custintel.config import Settings
    from custintel.steps.segment import slack_summary, suggested_action

    report = {"k": 2, "segments": [{"name": "loyal high value", "customers": 700},
                                   {"name": "at risk mid value", "customers": 300}],
              "migration": {"moved_into_risky": 80, "moved_into_risky_share": 0.08},
              "revenue_at_risk_by_tier": {"high": 1234.5, "inactive": 3.0},
              "tiers": {"names": ["inactive", "low", "mid", "high"]}}
    text = slack_summary(report, Settings(), "run-1")
    assert "2 segments (loyal high value 700, at risk mid value 300)" in text
    assert "80 customers (8.0%) moved into at-risk segments" in text
    assert "Revenue at risk by tier: inactive 3, high 1,234." in text
    quiet = slack_summary({**report, "migration": {"moved_into_risky": 1, "moved_into_risky_share": 0.001}},
                          Settings(), "run-2")
    assert "moved into" not in quiet  # below segments.migration_alert_share: not notable
    playbook = Settings().playbook
    assert suggested_action("at risk big spenders", playbook) == "service call from an account manager"
    assert suggested_action("at risk mid value", playbook) == "coupon: 15% off the next order"
    assert suggested_action("loyal high value", playbook) == "no action"


def test_ids_are_stable_on_generated_customers(tmp_path):
    """The issue's check on generated data: refit the same customers with another seed."""
    from datetime import UTC, datetime

    from custintel.config import DataSection
    from custintel.data.generator import generate_chunks, write_tables
    from custintel.features.point_in_time import compute_features
    from custintel.features.schema import ENGAGEMENT, PURCHASE, feature_names

    write_tables(generate_chunks(DataSection(n_customers=3000), seed=5), tmp_path)
    frame = compute_features(tmp_path, [datetime(2025, 12, 31, tzinfo=UTC)], [PURCHASE, ENGAGEMENT])
    names = feature_names([PURCHASE, ENGAGEMENT])
    churn, spend = np.zeros(len(frame)), frame["spend_90d"].to_numpy()
    first, ids_first = fit_segmenter(frame, names, 1, None, (3, 5), None, 0.5, churn, spend)
    _, ids_second = fit_segmenter(frame, names, 7, None, (3, 5), first, 0.5, churn, spend)
    assert np.mean(ids_first == ids_second) >= 0.95


def test_a_new_customer_surge_lands_in_the_kept_new_segment(tmp_path):
    """Drift scenario: 40% more customers arrive from a new channel after the start. The refit keeps
    the old segments' ids, the surge lands mostly in the (kept) "new ..." segment, and any extra
    cluster gets a fresh id."""
    from datetime import UTC, date, datetime

    from custintel.config import DataSection
    from custintel.data.generator import generate_chunks, write_tables
    from custintel.features.point_in_time import compute_features
    from custintel.features.schema import ENGAGEMENT, PURCHASE, feature_names

    cfg = DataSection(n_customers=3000, scenario="new_customer_surge", scenario_start=date(2025, 7, 1))
    write_tables(generate_chunks(cfg, seed=5), tmp_path)
    groups, names = [PURCHASE, ENGAGEMENT], feature_names([PURCHASE, ENGAGEMENT])

    def fit(snapshot: datetime, k: int, previous=None):
        frame = compute_features(tmp_path, [snapshot], groups)
        churn = (1 / (1 + np.exp(-(np.log1p(frame["recency_days"]) - 4)))).to_numpy()
        spend = frame["spend_90d"].to_numpy()
        return frame, *fit_segmenter(frame, names, 1, k, (3, 6), previous, 0.5, churn, spend)

    _, old, _ = fit(datetime(2025, 7, 1, tzinfo=UTC), 4)
    after, new, ids = fit(datetime(2025, 12, 31, tzinfo=UTC), 5, old)
    assert set(old.ids) - set(new.retired) <= set(new.ids)  # matched segments keep their ids
    assert all(i in old.ids or i >= old.next_id for i in new.ids)  # the rest are fresh, never reused
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    surge = after["customer_id"].isin(customers.loc[customers["channel"] == "tiktok", "customer_id"])
    home = pd.Series(ids[surge.to_numpy()]).mode()[0]
    assert home in old.ids and new.names[home].startswith("new")


def test_migration_report_counts_moves_into_risky_segments(tmp_path):
    from custintel.steps.segment import migration_report, plot_migration

    before = np.array([1, 1, 1, 2, 2, 3, 3, 3])
    after = np.array([1, 1, 4, 2, 4, 3, 3, 2])
    report = migration_report(before, after, {1: "loyal", 2: "at risk", 3: "new"},
                              {1: "loyal", 2: "at risk", 3: "new", 4: "dormant"}, risky={2, 4})
    assert report["rows"] == ["1: loyal", "2: at risk", "3: new"]
    assert report["columns"] == ["1: loyal", "2: at risk", "3: new", "4: dormant"]
    assert report["counts"] == [[2, 0, 0, 1], [0, 1, 0, 1], [0, 1, 2, 0]]
    assert report["shares"][0] == [pytest.approx(2 / 3, abs=1e-4), 0, 0, pytest.approx(1 / 3, abs=1e-4)]
    # moved in from a non-risky segment: 1 -> 4 and 3 -> 2 (2 -> 4 was already at risk)
    assert report["moved_into_risky"] == 2 and report["moved_into_risky_share"] == 0.25
    assert report["kept_segment"] == 5 / 8
    plot_migration(report, tmp_path / "migration.png")
    assert (tmp_path / "migration.png").stat().st_size > 5000
