"""Refit the best trial's configuration on train + validation snapshots and score the holdout."""

from __future__ import annotations

import lightning.pytorch as pl
import pandas as pd

from custintel.config import Settings
from training.datamodule import CustomerDataModule
from training.lightning_module import CustomerModel
from training.network import NetConfig
from training.predictor import Predictor
from training.trainer import make_trainer

_NET_KEYS = ("hidden_dim", "n_layers", "dropout")


def refit(train: pd.DataFrame, feature_names: list[str], params: dict, epochs: int,
          settings: Settings) -> Predictor:
    """Train on all of `train` for `epochs` epochs (no validation) and return the predictor."""
    pl.seed_everything(settings.base.seed, workers=True, verbose=False)
    from training.tune import model_params

    dm = CustomerDataModule(train, train.iloc[:1], feature_names,
                            params.get("batch_size", settings.train.batch_size), settings.train.num_workers)
    model = CustomerModel(n_features=len(feature_names), spend_log_mean=dm.spend_log_mean,
                          lr_schedule=settings.train.lr_schedule,
                          **model_params(params))
    make_trainer(settings.train, epochs, validate=False).fit(model, datamodule=dm)
    net = model.net.float().cpu().eval()
    net_cfg = NetConfig(n_features=len(feature_names), **{k: params[k] for k in _NET_KEYS})
    return Predictor(net=net, net_config=net_cfg, scaler=dm.scaler)
