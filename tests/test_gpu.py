"""The GPU training path (bf16 mixed precision). Skipped without a CUDA GPU; CI has none."""

import numpy as np
import pandas as pd
import pytest
import torch

from custintel.config import settings_from_dict
from custintel.features.schema import CHURN_LABEL, ENTITY_KEY, FEATURE_NAMES, TIMESTAMP, VALUE_LABEL
from tests.conftest import tiny_params

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_refit_on_gpu_with_bf16_gives_a_cpu_predictor(tmp_path):
    from training.fit import refit
    from training.trainer import resolve_accelerator

    settings = settings_from_dict(tiny_params(tmp_path))
    assert resolve_accelerator(settings.train) == "gpu"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.gamma(2.0, 10.0, (2000, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    frame[ENTITY_KEY], frame[TIMESTAMP] = np.arange(2000), pd.Timestamp("2025-01-01", tz="UTC")
    frame[CHURN_LABEL] = (frame["recency_days"] > 20).astype(int)
    frame[VALUE_LABEL] = np.where(frame[CHURN_LABEL] == 1, 0.0, frame["spend_90d"])
    params = {"hidden_dim": 16, "n_layers": 1, "dropout": 0.0, "lr": 1e-2, "weight_decay": 0.0,
              "value_loss_weight": 1.0}
    predictor = refit(frame, FEATURE_NAMES, params, epochs=2, settings=settings)
    churn, spend = predictor.predict_arrays(frame)
    assert next(predictor.net.parameters()).device.type == "cpu"
    assert np.isfinite(churn).all() and np.isfinite(spend).all()
