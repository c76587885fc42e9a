"""Data-quality checks of a monitoring run: they tell a broken feed from genuine drift.

A genuine change moves a distribution within what the data can hold (prices 30% higher); a broken
feed produces what the reference never could: no rows, a column gone or new, nulls where there
were none, values far outside the reference range (amounts in cents), categories never seen.
Any failed check ends the run as "failed": an alert, never a retrain on broken data.

Checks run on every current row (cheap vectorised passes) against the reference sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from custintel.config import DriftQualitySection

# Issues after which the columns cannot be compared at all (no drift test runs on them).
STRUCTURAL = ("no_rows", "missing_column", "new_column", "all_null", "type_changed")


@dataclass(frozen=True)
class QualityIssue:
    check: str  # no_rows, missing_column, new_column, all_null, type_changed, null_increase,
    #             out_of_range, new_categories
    feature: str | None
    detail: str
    value: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _null_share(column: pd.Series) -> float:
    if not len(column):
        return 0.0
    if column.dtype.kind == "f":  # numpy on the column's own buffer: no pandas temporaries
        return float(np.count_nonzero(np.isnan(column.to_numpy())) / len(column))
    return float(column.isna().mean())


def structure_issues(reference: pd.DataFrame, current: pd.DataFrame,
                     features: list[str]) -> list[QualityIssue]:
    """Rows and columns: what must hold before any column can be compared."""
    issues = [QualityIssue("no_rows", None, f"the {side} data has no rows")
              for side, frame in (("reference", reference), ("current", current)) if len(frame) == 0]
    for name in features:
        for side, frame in (("reference", reference), ("current", current)):
            if name not in frame.columns:
                issues.append(QualityIssue("missing_column", name, f"{name} is missing from the {side} data"))
    issues += [QualityIssue("new_column", name, f"{name} is in the current data but not in the reference")
               for name in current.columns if name not in reference.columns and name not in features]
    for name in features:
        if name not in reference.columns or name not in current.columns:
            continue
        for side, frame in (("reference", reference), ("current", current)):
            if len(frame) and _null_share(frame[name]) == 1.0:
                issues.append(QualityIssue("all_null", name, f"{name} is null in every {side} row"))
        ref_numeric = pd.api.types.is_numeric_dtype(reference[name])
        if len(current) and ref_numeric != pd.api.types.is_numeric_dtype(current[name]):
            issues.append(QualityIssue("type_changed", name, f"{name} was {reference[name].dtype} in the "
                                                             f"reference, is {current[name].dtype} now"))
    return issues


def value_issues(reference: pd.DataFrame, current: pd.DataFrame, features: list[str],
                 cfg: DriftQualitySection) -> list[QualityIssue]:
    """Nulls, out-of-range values and unseen categories of comparable columns."""
    issues: list[QualityIssue] = []
    for name in features:
        ref, cur = reference[name], current[name]
        rise = _null_share(cur) - _null_share(ref)
        if rise > cfg.max_null_increase:
            issues.append(QualityIssue("null_increase", name, f"null share of {name} rose by {rise:.1%}",
                                       rise, cfg.max_null_increase))
        if pd.api.types.is_numeric_dtype(ref):
            low, high = float(ref.min()), float(ref.max())
            margin = cfg.range_margin * (high - low)
            values = cur.to_numpy(dtype=float, copy=False)
            outside = np.count_nonzero(values < low - margin) + np.count_nonzero(values > high + margin)
            outside = outside / len(values)
            if outside > cfg.max_out_of_range:
                issues.append(QualityIssue(
                    "out_of_range", name,
                    f"{outside:.1%} of {name} outside the reference range [{low:.4g}, {high:.4g}] "
                    f"widened by {cfg.range_margin:g}x its width",
                    outside, cfg.max_out_of_range))
        else:
            unseen = float((~cur.dropna().isin(set(ref.dropna().unique()))).sum() / max(len(cur), 1))
            if unseen > cfg.max_new_categories:
                issues.append(QualityIssue("new_categories", name,
                                           f"{unseen:.1%} of {name} are categories the reference never had",
                                           unseen, cfg.max_new_categories))
    return issues


def check_quality(reference: pd.DataFrame, current: pd.DataFrame, features: list[str],
                  cfg: DriftQualitySection) -> tuple[list[QualityIssue], list[str]]:
    """(issues, the features that can be compared)."""
    issues = structure_issues(reference, current, features)
    if any(i.check == "no_rows" for i in issues):
        return issues, []
    broken = {i.feature for i in issues}
    comparable = [name for name in features if name not in broken]
    return issues + value_issues(reference, current, comparable, cfg), comparable
