"""Baselines scored on the same holdout rows as the model: an RFM rule and LightGBM (a binary
churn classifier and a Tweedie spend regressor on the same features, early-stopped on the
validation snapshot)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from custintel.features.schema import CHURN_LABEL, VALUE_LABEL


def rfm_rule(holdout: pd.DataFrame, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Churn risk rises with recency; spend = last 90 days' spend scaled to the horizon."""
    churn = holdout["recency_days"].rank(pct=True).to_numpy()
    return churn, (holdout["spend_90d"] * horizon_days / 90.0).to_numpy()


def lightgbm_baseline(train: pd.DataFrame, val: pd.DataFrame, holdout: pd.DataFrame,
                      features: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    import lightgbm as lgb

    common = {"n_estimators": 500, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 50,
              "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.9, "random_state": seed,
              "deterministic": True, "force_row_wise": True, "n_jobs": 2, "verbose": -1}
    stop = [lgb.early_stopping(30, verbose=False)]
    churn = lgb.LGBMClassifier(objective="binary", **common)
    churn.fit(train[features], train[CHURN_LABEL], eval_set=[(val[features], val[CHURN_LABEL])],
              callbacks=stop)
    spend = lgb.LGBMRegressor(objective="tweedie", tweedie_variance_power=1.3, **common)
    spend.fit(train[features], train[VALUE_LABEL], eval_set=[(val[features], val[VALUE_LABEL])],
              callbacks=stop)
    return churn.predict_proba(holdout[features])[:, 1], spend.predict(holdout[features])
