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


@pytest.mark.parametrize("layers", [1, 3])
def test_a_frozen_predictor_scores_exactly_as_the_module(layers):
    """freeze() (serving, batch scoring) traces the net into one TorchScript graph: same outputs, bit for
    bit, at any batch size and on rows with missing values, and it really runs the graph."""
    frame = _frame([datetime(2024, 1, 1, tzinfo=UTC)], n=300, seed=layers)
    frame.loc[::7, FEATURE_NAMES[:5]] = np.nan
    cfg = NetConfig(n_features=len(FEATURE_NAMES), hidden_dim=32, n_layers=layers, dropout=0.2)
    torch.manual_seed(layers)
    eager = Predictor(net=MultiTaskNet(cfg), net_config=cfg, scaler=FeatureScaler(FEATURE_NAMES).fit(frame))
    frozen = Predictor(net=MultiTaskNet(cfg), net_config=cfg, scaler=eager.scaler)
    frozen.net.load_state_dict(eager.net.state_dict())
    assert frozen.freeze() is frozen and frozen._graph is not None
    for rows in (1, 2, 100, 300, 1, 57):
        for a, b in zip(eager.predict_arrays(frame.iloc[:rows]), frozen.predict_arrays(frame.iloc[:rows]),
                        strict=True):
            assert np.array_equal(a, b)
    def refuse(x):
        raise AssertionError("the eager module ran")

    frozen.net.forward = refuse  # the graph runs without calling the module's Python forward
    frozen.predict_arrays(frame)
    with pytest.raises(AssertionError, match="eager module ran"):
        eager.net.forward = refuse
        eager.predict_arrays(frame)


def test_scaler_names_missing_features():
    scaler = FeatureScaler(FEATURE_NAMES).fit(_frame([datetime(2024, 1, 1, tzinfo=UTC)]))
    with pytest.raises(KeyError, match="recency_days"):
        scaler.transform(pd.DataFrame({"frequency": [1.0]}))


def test_scaler_keeps_the_sign_of_negative_features():
    frame = _frame([datetime(2024, 1, 1, tzinfo=UTC)])
    frame["spend_trend_30d"] = np.linspace(-500.0, 500.0, len(frame))
    x = FeatureScaler(FEATURE_NAMES).fit(frame).transform(frame)[:, FEATURE_NAMES.index("spend_trend_30d")]
    assert (np.diff(x) > 0).all()  # strictly increasing: falling trends no longer all map to zero
    assert x[0] == pytest.approx(-x[-1], rel=1e-4)  # symmetric around zero, like the input


def test_a_scaler_saved_without_a_transform_keeps_the_clipping_it_was_fitted_with():
    frame = _frame([datetime(2024, 1, 1, tzinfo=UTC)])
    frame["spend_trend_30d"] = np.linspace(-500.0, 500.0, len(frame))
    legacy = FeatureScaler(FEATURE_NAMES, transform="clip_log1p").fit(frame).to_dict()
    del legacy["transform"]  # model.json files written before the key existed
    x = FeatureScaler.from_dict(legacy).transform(frame)[:, FEATURE_NAMES.index("spend_trend_30d")]
    negative = frame["spend_trend_30d"].to_numpy() <= 0
    assert np.ptp(x[negative]) == 0 and (x[~negative] > x[negative][0]).all()


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_learning_rate_schedule_over_a_fit(schedule):
    from custintel.config import TrainSection
    from training.datamodule import CustomerDataModule
    from training.lightning_module import CustomerModel
    from training.trainer import make_trainer

    frame = _frame([datetime(2024, 1, 1, tzinfo=UTC)], n=200)
    dm = CustomerDataModule(frame, frame, FEATURE_NAMES, batch_size=50)
    model = CustomerModel(n_features=len(FEATURE_NAMES), hidden_dim=8, n_layers=1, lr=1e-3,
                          lr_schedule=schedule)
    make_trainer(TrainSection(accelerator="cpu"), max_epochs=2, validate=False).fit(model, datamodule=dm)
    final_lr = model.trainer.optimizers[0].param_groups[0]["lr"]
    if schedule == "cosine":  # annealed to zero over the fit's 8 steps
        assert final_lr == pytest.approx(0.0, abs=1e-9)
    else:
        assert final_lr == pytest.approx(1e-3)
