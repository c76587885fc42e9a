"""Value tiers from predicted spend: "inactive" below a floor, then low / mid / high (configurable
names) by quantiles of the active customers' predicted spend or by absolute thresholds.

The thresholds are fitted once at training, saved with the model (`tiers.json`) and used
unchanged by evaluation, batch scoring and serving, so a customer's tier is the same everywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

INACTIVE = "inactive"
TIERS_FILE = "tiers.json"


@dataclass(frozen=True)
class ValueTiers:
    inactive_below: float  # predicted spend under this: inactive
    edges: tuple[float, ...]  # ascending spend thresholds between consecutive names
    names: tuple[str, ...]  # lowest first; len(names) == len(edges) + 1

    def assign(self, predicted_spend: np.ndarray) -> np.ndarray:
        return np.asarray(self.order, dtype=object)[self.codes(predicted_spend)]

    def codes(self, predicted_spend: np.ndarray) -> np.ndarray:
        """Each spend's tier as an index into `order` (0 = inactive)."""
        spend = np.asarray(predicted_spend, dtype=float)
        codes = np.searchsorted(np.asarray(self.edges, dtype=float), spend, side="right") + 1
        codes[~(spend >= self.inactive_below)] = 0  # NaN spend is inactive too
        return codes

    @property
    def order(self) -> list[str]:
        """Tier names from the least to the most valuable."""
        return [INACTIVE, *self.names]

    def save(self, directory: Path) -> None:
        (directory / TIERS_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> ValueTiers | None:
        path = directory / TIERS_FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        return cls(float(raw["inactive_below"]), tuple(raw["edges"]), tuple(raw["names"]))


def fit_tiers(predicted_spend: np.ndarray, names: tuple[str, ...], inactive_below: float,
              quantiles: tuple[float, ...] | None = None, thresholds: tuple[float, ...] | None = None
              ) -> ValueTiers:
    """Tiers from `quantiles` of the active customers' predicted spend, or from absolute `thresholds`."""
    if (quantiles is None) == (thresholds is None):
        raise ValueError("give exactly one of quantiles or thresholds")
    cuts = quantiles if quantiles is not None else thresholds
    if len(cuts) != len(names) - 1:
        raise ValueError(f"{len(names)} tier names need {len(names) - 1} cut points, got {len(cuts)}")
    if thresholds is not None:
        edges = tuple(float(t) for t in thresholds)
    else:
        spend = np.asarray(predicted_spend, dtype=float)
        active = spend[spend >= inactive_below]
        if not len(active):
            active = np.array([inactive_below])
        edges = tuple(float(np.quantile(active, q)) for q in quantiles)
    return ValueTiers(float(inactive_below), edges, tuple(names))


def tier_report(tiers: ValueTiers, predicted_spend: np.ndarray, actual_spend: np.ndarray) -> list[dict]:
    """Per tier: customers, share of customers, of predicted and of actual revenue, and lift (actual
    revenue share over customer share)."""
    labels = tiers.assign(predicted_spend)
    predicted, actual = np.asarray(predicted_spend, dtype=float), np.asarray(actual_spend, dtype=float)
    total_pred, total_actual, n = max(predicted.sum(), 1e-12), max(actual.sum(), 1e-12), len(labels)
    rows = []
    for name in tiers.order:
        mask = labels == name
        share = mask.sum() / max(n, 1)
        actual_share = actual[mask].sum() / total_actual
        rows.append({"tier": name, "customers": int(mask.sum()), "customer_share": float(share),
                     "predicted_revenue_share": float(predicted[mask].sum() / total_pred),
                     "actual_revenue_share": float(actual_share),
                     "mean_actual_spend": float(actual[mask].mean()) if mask.any() else float("nan"),
                     "lift": float(actual_share / share) if share else float("nan")})
    return rows
