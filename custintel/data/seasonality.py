"""Weekly and seasonal shape of shopping: one deterministic multiplier s(day) per calendar day (UTC).

Order and session intensity on a day is the customer's rate times s(day) = weekday factor x month
factor, both normalised to mean 1 (weekdays over a week, months over the days of a 365-day year),
so s averages about 1 over a year: a customer's yearly purchase count keeps its meaning. Weekends
and November/December are busy, high summer is quiet. The generator (an inhomogeneous Poisson
process, simulated by a time change through the cumulative intensity) and the ground truth (a
per-day rate l_j = l s_j) both use `daily_multiplier`, so they agree exactly.
"""

from __future__ import annotations

import numpy as np

DAY_S = 86_400.0
# Monday .. Sunday: a weekend peak.
_WEEKDAY = np.array([0.92, 0.90, 0.90, 0.94, 1.00, 1.24, 1.10])
# January .. December: a post-holiday lull, a summer dip, the November/December peak.
_MONTH = np.array([0.92, 0.90, 0.96, 0.98, 1.00, 0.92, 0.84, 0.86, 0.96, 1.02, 1.24, 1.40])
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
WEEKDAY_FACTOR = _WEEKDAY / _WEEKDAY.mean()
MONTH_FACTOR = _MONTH / np.average(_MONTH, weights=_DAYS_IN_MONTH)


def daily_multiplier(day: np.ndarray) -> np.ndarray:
    """s(day) for days counted from 1970-01-01 (integers, or anything numpy reads as datetime64[D])."""
    day = np.asarray(day)
    days = (day if day.dtype.kind == "M" else day.astype("int64")).astype("datetime64[D]")
    n = days.astype("int64")
    weekday = (n + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    month = days.astype("datetime64[M]").astype("int64") % 12
    return WEEKDAY_FACTOR[weekday] * MONTH_FACTOR[month]


class Clock:
    """Cumulative intensity L(t) = integral of s over [t0, t] (in seconds x s) on whole days from the
    day of `t0` to the day after `t1`, and its inverse: piecewise linear, strictly increasing."""

    def __init__(self, t0: float, t1: float):
        first, last = int(np.floor(t0 / DAY_S)), int(np.ceil(t1 / DAY_S)) + 1
        days = np.arange(first, last)
        self.knots = np.append(days, last) * DAY_S  # day boundaries, in seconds since the epoch
        self.cum = np.concatenate([[0.0], np.cumsum(daily_multiplier(days)) * DAY_S])

    def intensity(self, t: np.ndarray) -> np.ndarray:
        """L(t); `t` must lie within the clock's days."""
        return np.interp(t, self.knots, self.cum)

    def time_of(self, level: np.ndarray) -> np.ndarray:
        """The t with L(t) = level."""
        return np.interp(level, self.cum, self.knots)
