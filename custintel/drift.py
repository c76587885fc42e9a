"""Per-feature drift tests, one method per feature type, as effect sizes on samples of a stated size.

- continuous features: Wasserstein distance normed by the reference standard deviation (Evidently's
  "wasserstein"). Moving every value by d reference std-devs scores d, whatever the sample size, so
  the threshold (drift.wasserstein_threshold, 0.1) is an effect size, not a significance level.
- discrete features (at most drift.discrete_max_values distinct reference values, e.g. 7-day counts)
  and categorical columns: population stability index over the values (Evidently's "psi").

p-value tests (KS, chi-squared) are not used: on tens of thousands of rows they flag differences
far too small to matter. The noise floor of each statistic is measured on every run (the same
statistic between two halves of the reference sample, rescaled to the compared sample sizes), so
a report says how far the threshold lies above what sampling alone produces.

Both statistics compute exactly what Evidently's tests compute (tests/test_drift.py checks it), so
the HTML report (custintel.drift_report) shows the same numbers the decision used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from custintel.config import DriftSection

WASSERSTEIN = "wasserstein"
PSI = "psi"


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the reference std (floored at 0.001, as Evidently does)."""
    norm = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


def psi_by_value(reference: pd.Series, current: pd.Series) -> float:
    """PSI over the distinct values; an empty bucket gets a tiny share (Evidently's rule)."""
    keys = pd.Index(pd.concat([reference, current]).dropna().unique())
    ref = reference.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / max(len(reference), 1)
    cur = current.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / max(len(current), 1)
    for share in (ref, cur):
        nonzero = share[share != 0]
        floor = nonzero.min() / 1e6 if len(nonzero) and nonzero.min() <= 0.0001 else 0.0001
        share[share == 0] = floor
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def method_for(reference: pd.Series, cfg: DriftSection) -> tuple[str, float]:
    """(method, threshold) for a column, chosen from its reference values."""
    if not pd.api.types.is_numeric_dtype(reference) or reference.nunique() <= cfg.discrete_max_values:
        return PSI, cfg.psi_threshold
    return WASSERSTEIN, cfg.wasserstein_threshold


def statistic(method: str, reference: pd.Series, current: pd.Series) -> float:
    reference, current = reference.dropna(), current.dropna()
    if method == WASSERSTEIN:
        return wasserstein_norm(reference.to_numpy(dtype=float), current.to_numpy(dtype=float))
    return psi_by_value(reference, current)


def noise_floor(method: str, reference: pd.Series, n_current: int, seed: int) -> float:
    """The statistic between two random halves of the reference sample, rescaled to a comparison of
    len(reference) vs n_current rows: Wasserstein noise shrinks as 1/sqrt(n), PSI noise as 1/n."""
    values = reference.dropna()
    if len(values) < 4 or n_current < 1:
        return float("nan")
    order = np.random.default_rng(seed).permutation(len(values))
    half = len(values) // 2
    split = statistic(method, values.iloc[order[:half]], values.iloc[order[half:2 * half]])
    n_eff_split = half / 2
    n_eff = len(values) * n_current / (len(values) + n_current)
    ratio = n_eff_split / n_eff
    return split * (np.sqrt(ratio) if method == WASSERSTEIN else ratio)


@dataclass(frozen=True)
class ColumnDrift:
    method: str
    threshold: float
    value: float
    drifted: bool
    noise: float  # the statistic's value under no drift at these sample sizes (split-half estimate)

    def to_dict(self) -> dict:
        return asdict(self)


def column_drift(reference: pd.Series, current: pd.Series, cfg: DriftSection, seed: int) -> ColumnDrift:
    method, threshold = method_for(reference.dropna(), cfg)
    value = statistic(method, reference, current)
    return ColumnDrift(method, threshold, value, value >= threshold,
                       noise_floor(method, reference, int(current.notna().sum()), seed))


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], cfg: DriftSection,
                  seed: int) -> dict[str, ColumnDrift]:
    """Drift of each column, reference sample vs current sample."""
    return {c: column_drift(reference[c], current[c], cfg, seed) for c in columns}


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n rows, drawn uniformly without replacement (all rows when there are fewer)."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def ranked(results: dict[str, ColumnDrift]) -> list[str]:
    """Columns by how far past its threshold each is (value / threshold), largest first."""
    return sorted(results, key=lambda c: -results[c].value / results[c].threshold)
