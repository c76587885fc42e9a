import numpy as np
import pandas as pd

from custintel.drift import drift_report


def _frame(n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n), "c": rng.gamma(2, 1, n)})


def test_identical_data_reports_no_drift(tmp_path):
    frame = _frame(2000)
    summary = drift_report(frame, frame, ["a", "b", "c"], threshold=0.3, sample_size=2000, seed=0,
                           out_dir=tmp_path)
    assert summary.drifted_features == [] and not summary.alert
    assert (tmp_path / "drift.html").stat().st_size > 1000
    assert (tmp_path / "drift.json").is_file()


def test_shifted_feature_is_named(tmp_path):
    summary = drift_report(_frame(2000), _frame(2000, shift=2.0, seed=1), ["a", "b", "c"], threshold=0.3,
                           sample_size=2000, seed=0, out_dir=tmp_path)
    assert summary.drifted_features == ["a"]
    assert summary.alert  # 1/3 > 0.3
