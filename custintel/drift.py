"""Per-feature drift tests as effect sizes on samples of a stated size, one family per column type.

- numeric columns get two tests, each calibrated so that shifting a normal distribution by 0.1 of
  its standard deviation lands on the default threshold; the column drifts when either crosses:
  * "wasserstein": Wasserstein distance normed by the reference standard deviation (Evidently's
    test). Moving every value by d std-devs scores d. It sees moves in the feature's own units
    (prices 30% higher move the big spenders' tail a long way) but is blind to a change in the bulk
    of a heavy-tailed or zero-inflated feature, whose std the tail dominates: a churn wave that
    adds 5 points of customers with no spend in 90 days (spend_90d), or doubles the lower quartile
    of recency_days (16 -> 30 days), scores 0.05-0.07 there.
  * "quantile_psi": population stability index over bins at the reference deciles (tied deciles
    merge, so a feature that is 50% zeros gets one zero bin). It depends only on ranks, so tails
    and scale do not dilute it, and it weighs relative changes of each bin's share: the churn
    wave's features score 1.7-6x its threshold. A normal shifted by d scores about d**2, hence the
    default 0.01 (drift.quantile_psi_threshold) for a 0.1 std-dev shift.
- categorical columns and numeric ones with at most two values (flags): PSI over the values
  (Evidently's "psi"), drift.psi_threshold.

p-value tests (KS, chi-squared) do not decide: on tens of thousands of rows they flag differences
far too small to matter. They only guard small samples: with n_ref vs n_cur rows and k bins, PSI
under no drift is about chi2(k - 1) * (1/n_ref + 1/n_cur), so a PSI threshold is raised to that
distribution's 1 - drift.psi_alpha quantile when it lies higher (at 20,000 rows a side it lies at
a third of 0.01; at 3,000 a side, above it). The Wasserstein threshold gets the same treatment
with a bootstrap instead of a formula (its null distribution depends on the feature's shape):
wasserstein_floor draws pairs of samples from the reference and raises the threshold to the
statistic's estimated 1 - drift.wasserstein_alpha quantile where that lies higher (a normal feature
at 300 rows a side: about 0.36 std-devs; at 20,000: about 0.045, so the 0.1 threshold stands),
computed only for a column whose value crosses the configured threshold (a floor only raises it).
The noise floor of each test is measured on every run (the statistic between two halves of the
reference sample, rescaled to the compared sample sizes), so a report says how far each threshold
lies above what sampling alone produces.

"wasserstein" and "psi" compute exactly Evidently's numbers, and "quantile_psi" is registered with
Evidently under that name (custintel.drift_report), so the HTML report shows the numbers the
decision used (tests/test_drift.py checks both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from custintel.config import DriftSection

WASSERSTEIN = "wasserstein"
QUANTILE_PSI = "quantile_psi"
PSI = "psi"


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein-1 distance divided by the reference std (floored at 0.001, as Evidently does)."""
    norm = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


def psi_of_shares(ref: np.ndarray, cur: np.ndarray) -> float:
    """PSI of two share vectors; an empty bucket gets a tiny share (Evidently's rule)."""
    ref, cur = ref.astype(float), cur.astype(float)
    for share in (ref, cur):
        nonzero = share[share != 0]
        floor = nonzero.min() / 1e6 if len(nonzero) and nonzero.min() <= 0.0001 else 0.0001
        share[share == 0] = floor
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def psi_by_value(reference: pd.Series, current: pd.Series) -> float:
    """PSI over the distinct values."""
    keys = pd.Index(pd.concat([reference, current]).dropna().unique())
    ref = reference.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / max(len(reference), 1)
    cur = current.value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float) / max(len(current), 1)
    return psi_of_shares(ref, cur)


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """The distinct inner cut points of `bins` equal-count bins of the reference."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def quantile_psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI over `bins` bins cut at the reference quantiles (equal cut points merge: a value that
    holds several deciles, such as the zeros of a zero-inflated feature, is one bin)."""
    edges = quantile_edges(reference, bins)
    n = len(edges) + 1
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=n) / max(len(reference), 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=n) / max(len(current), 1)
    return psi_of_shares(ref, cur)


def tests_for(reference: pd.Series, cfg: DriftSection) -> dict[str, float]:
    """{method: threshold} of the tests a column gets, chosen from its reference values. A numeric
    column with at most two values (a flag, the churn label) is categorical: its share is all."""
    if pd.api.types.is_numeric_dtype(reference) and reference.nunique() > 2:
        return {WASSERSTEIN: cfg.wasserstein_threshold, QUANTILE_PSI: cfg.quantile_psi_threshold}
    return {PSI: cfg.psi_threshold}


def statistic(method: str, reference: pd.Series, current: pd.Series, cfg: DriftSection) -> float:
    reference, current = reference.dropna(), current.dropna()
    if method == WASSERSTEIN:
        return wasserstein_norm(reference.to_numpy(dtype=float), current.to_numpy(dtype=float))
    if method == QUANTILE_PSI:
        return quantile_psi(reference.to_numpy(dtype=float), current.to_numpy(dtype=float), cfg.quantile_bins)
    return psi_by_value(reference, current)


FLOOR_RESAMPLES = 128  # bootstrap pairs behind a Wasserstein significance floor
FLOOR_ROWS = 2000  # rows per side of each pair (larger samples: rescaled by sqrt(n_eff))


@lru_cache(maxsize=1)
def floor_uniforms(seed: int = 0) -> np.ndarray:
    """The bootstrap's uniform draws, fixed: a day with a few more current rows redraws nearly the
    same pairs, so the floor moves smoothly with the sample sizes instead of flapping."""
    return np.random.default_rng(seed).random((FLOOR_RESAMPLES, 2 * FLOOR_ROWS))


def wasserstein_floor(reference: np.ndarray, n_current: int, alpha: float) -> float:
    """The normed Wasserstein distance that two samples of one distribution (len(reference) and
    n_current rows) exceed with probability about `alpha`. Pairs of samples are drawn from the
    reference (with replacement, at most FLOOR_ROWS a side) and the statistic computed as the test
    computes it; its log is treated as normal (the statistic is positive and right-skewed) and the
    1 - alpha quantile rescaled from the pairs' effective size to n_eff by sqrt(n_eff) (the rate at
    which sampling noise shrinks)."""
    n_ref = len(reference)
    if n_ref < 2 or n_current < 1:
        return 0.0
    a, b = min(n_ref, FLOOR_ROWS), min(n_current, FLOOR_ROWS)
    uniforms = floor_uniforms()
    picks = (uniforms * n_ref).astype(np.int64)
    draws = np.log([max(wasserstein_norm(reference[row[:a]], reference[row[FLOOR_ROWS:FLOOR_ROWS + b]]),
                        1e-12) for row in picks])
    quantile = float(np.exp(draws.mean() + stats.norm.ppf(1 - alpha) * draws.std()))
    n_eff = n_ref * n_current / (n_ref + n_current)
    return quantile * float(np.sqrt(a * b / (a + b) / n_eff))


def significance_floor(method: str, reference: pd.Series, current: pd.Series, cfg: DriftSection) -> float:
    """The value that sampling alone exceeds with probability drift.psi_alpha (PSI tests: PSI times
    the effective sample size is about chi-squared with bins - 1 degrees of freedom) or
    drift.wasserstein_alpha (wasserstein_floor)."""
    n_ref, n_cur = len(reference), len(current)
    if method == WASSERSTEIN:
        return wasserstein_floor(reference.to_numpy(dtype=float), n_cur, cfg.wasserstein_alpha)
    if method == QUANTILE_PSI:  # the bins the reference fills
        values = reference.to_numpy(dtype=float)
        edges = quantile_edges(values, cfg.quantile_bins)
        bins = np.count_nonzero(np.bincount(np.searchsorted(edges, values, side="right")))
    else:
        bins = reference.nunique()
    if n_ref < 1 or n_cur < 1 or bins < 2:
        return 0.0
    return float(stats.chi2.ppf(1 - cfg.psi_alpha, bins - 1) * (1 / n_ref + 1 / n_cur))


def noise_floor(method: str, reference: pd.Series, n_current: int, cfg: DriftSection, seed: int) -> float:
    """The statistic between two random halves of the reference sample, rescaled to a comparison of
    len(reference) vs n_current rows: Wasserstein noise shrinks as 1/sqrt(n), PSI noise as 1/n."""
    values = reference.dropna()
    if len(values) < 4 or n_current < 1:
        return float("nan")
    order = np.random.default_rng(seed).permutation(len(values))
    half = len(values) // 2
    split = statistic(method, values.iloc[order[:half]], values.iloc[order[half:2 * half]], cfg)
    n_eff_split = half / 2
    n_eff = len(values) * n_current / (len(values) + n_current)
    ratio = n_eff_split / n_eff
    return split * (np.sqrt(ratio) if method == WASSERSTEIN else ratio)


@dataclass(frozen=True)
class StatResult:
    threshold: float  # the configured threshold, or the significance floor where that lies higher
    value: float
    noise: float  # the statistic's value under no drift at these sample sizes (split-half estimate)

    @property
    def severity(self) -> float:
        return self.value / self.threshold


@dataclass(frozen=True)
class ColumnDrift:
    """A column's tests; method, threshold, value and noise are those of the test that is furthest
    past (or nearest to) its threshold, the one that decides."""

    method: str
    threshold: float
    value: float
    drifted: bool
    noise: float
    tests: dict[str, StatResult] = field(default_factory=dict)

    @property
    def severity(self) -> float:
        """value / threshold of the deciding test: 1 at the threshold."""
        return self.value / self.threshold

    def to_dict(self) -> dict:
        out = asdict(self)
        out["severity"] = self.severity
        return out


def column_drift(reference: pd.Series, current: pd.Series, cfg: DriftSection, seed: int) -> ColumnDrift:
    ref, cur = reference.dropna(), current.dropna()
    tests = {}
    for method, threshold in tests_for(ref, cfg).items():
        value = statistic(method, ref, cur, cfg)
        # the Wasserstein floor costs a bootstrap: it is only needed where the value crosses the
        # configured threshold (a floor can only raise it), so a quiet column's threshold is as set
        if method != WASSERSTEIN or value >= threshold:
            threshold = max(threshold, significance_floor(method, ref, cur, cfg))
        tests[method] = StatResult(threshold, value, noise_floor(method, ref, len(cur), cfg, seed))
    method = max(tests, key=lambda m: tests[m].severity)
    top = tests[method]
    return ColumnDrift(method, top.threshold, top.value, top.value >= top.threshold, top.noise, tests)


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
    return sorted(results, key=lambda c: -results[c].severity)
