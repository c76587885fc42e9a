from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import torch

from custintel.errors import UserError
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, FEATURE_NAMES, TIMESTAMP, VALUE_LABEL
from training.datamodule import time_split
from training.network import MultiTaskNet, NetConfig, ziln_expected, ziln_loss
from training.predictor import Predictor
from training.scaler import FeatureScaler


def _frame(snapshots, n=50, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in snapshots:
        block = pd.DataFrame(rng.gamma(2.0, 10.0, (n, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
        block[ENTITY_KEY] = np.arange(n)
        block[TIMESTAMP] = s
        block[CHURN_LABEL] = rng.integers(0, 2, n)
        block[VALUE_LABEL] = np.where(block[CHURN_LABEL] == 1, 0.0, rng.gamma(2.0, 50.0, n))
        rows.append(block)
    return pd.concat(rows, ignore_index=True)


def test_time_split_keeps_label_windows_before_later_splits():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    snaps = [start + timedelta(days=30 * i) for i in range(12)]
    split = time_split(_frame(snaps), horizon_days=90)
    horizon = timedelta(days=90)
    val_ts = split.val[TIMESTAMP].iloc[0]
    hold_ts = split.holdout[TIMESTAMP].iloc[0]
    assert hold_ts == snaps[-1]
    assert val_ts + horizon <= hold_ts
    assert (split.train[TIMESTAMP] + horizon <= val_ts).all()


def test_time_split_with_too_little_history_is_a_user_error():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(UserError, match="first_snapshot"):
        time_split(_frame([start, start + timedelta(days=30)]), horizon_days=90)


def test_ziln_loss_and_expectation():
    out = torch.zeros(4, 3, requires_grad=True)
    spend = torch.tensor([0.0, 0.0, 10.0, 100.0])
    loss = ziln_loss(out, spend)
    loss.backward()
    assert torch.isfinite(loss) and out.grad is not None
    expected = ziln_expected(torch.tensor([[0.0, np.log(10.0), -10.0]]))
    assert expected.item() == pytest.approx(5.0, rel=1e-2)  # P(>0)=0.5, lognormal mean ~ 10


def test_scaler_round_trip_and_predictor_save_load(tmp_path):
    frame = _frame([datetime(2024, 1, 1, tzinfo=UTC)])
    scaler = FeatureScaler(FEATURE_NAMES).fit(frame)
    restored = FeatureScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(scaler.transform(frame), restored.transform(frame))
    cfg = NetConfig(n_features=len(FEATURE_NAMES), hidden_dim=8, n_layers=1)
    predictor = Predictor(net=MultiTaskNet(cfg), net_config=cfg, scaler=scaler)
    predictor.save(tmp_path / "m")
    loaded = Predictor.load(tmp_path / "m")
    for a, b in zip(predictor.predict_arrays(frame), loaded.predict_arrays(frame), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    churn, spend = loaded.predict_arrays(frame)
    assert ((churn >= 0) & (churn <= 1)).all() and (spend >= 0).all()


def test_scaler_names_missing_features():
    scaler = FeatureScaler(FEATURE_NAMES).fit(_frame([datetime(2024, 1, 1, tzinfo=UTC)]))
    with pytest.raises(KeyError, match="recency_days"):
        scaler.transform(pd.DataFrame({"frequency": [1.0]}))
