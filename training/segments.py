"""Behavioural segments, re-fitted on every retrain with stable identities.

- Space: every model feature, signed-log transformed (counts and money are heavy-tailed) and
  standardised on the fitted population.
- K-means with K fixed by config or chosen by silhouette on a sample within a range.
- Identity: the previous version's segmenter assigns the same customers; new clusters are matched
  to old segments by the Hungarian algorithm on membership overlap. A match that holds at least
  `min_overlap` of the new cluster keeps the old id and name; other clusters get fresh ids (never
  reused) and new names; old segments left unmatched are retired.
- Names come from each segment's profile (churn risk, predicted spend, tenure, browsing) relative
  to the whole population, e.g. "at risk high value", "loyal high value", "new browsers".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.scaler import signed_log1p

SEGMENTS_FILE = "segments.json"


def _transform(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    return signed_log1p(frame[names].to_numpy(dtype=np.float64, na_value=0.0))


@dataclass
class Segmenter:
    feature_names: list[str]
    mean: np.ndarray
    std: np.ndarray
    centroids: np.ndarray  # (k, d) in the standardised space
    ids: list[int]  # segment id of each centroid
    names: dict[int, str]  # id -> name
    next_id: int  # ids are never reused
    retired: list[int] = field(default_factory=list)

    def space(self, frame: pd.DataFrame) -> np.ndarray:
        return (_transform(frame, self.feature_names) - self.mean) / self.std

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """Segment id per row (nearest centroid)."""
        return np.asarray(self.ids)[self.nearest(self.space(frame))]

    def positions_in(self, columns: list[str]) -> np.ndarray:
        """Where each of `feature_names` is among `columns` (for assign_array)."""
        return np.asarray([list(columns).index(name) for name in self.feature_names], dtype=np.int64)

    def assign_array(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """assign of a float64 matrix holding `feature_names` at columns `positions` (positions_in;
        NaN = missing), without pandas (the online serving path)."""
        picked = x[:, positions]
        picked = np.where(np.isnan(picked), 0.0, picked)
        return np.asarray(self.ids)[self.nearest((signed_log1p(picked) - self.mean) / self.std)]

    def nearest(self, x: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid of each row of `x` (rows already in `space`)."""
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid, so it drops out of the
        # argmin. One n x k matrix product: no n x k x d temporary (1M customers fit in memory), BLAS speed.
        centroids = np.asarray(self.centroids, dtype=np.float64)
        distances = (centroids**2).sum(axis=1)[None, :] - 2.0 * (x @ centroids.T)
        return distances.argmin(axis=1)

    def to_dict(self) -> dict:
        return {"feature_names": self.feature_names, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "centroids": self.centroids.tolist(), "ids": self.ids,
                "names": {str(k): v for k, v in self.names.items()}, "next_id": self.next_id,
                "retired": self.retired}

    @classmethod
    def from_dict(cls, raw: dict) -> Segmenter:
        names = {int(k): v for k, v in raw["names"].items()}
        return cls(raw["feature_names"], np.asarray(raw["mean"]), np.asarray(raw["std"]),
                   np.asarray(raw["centroids"]), list(raw["ids"]), names, int(raw["next_id"]),
                   list(raw.get("retired", [])))

    def save(self, directory: Path) -> None:
        (directory / SEGMENTS_FILE).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> Segmenter | None:
        path = directory / SEGMENTS_FILE
        return cls.from_dict(json.loads(path.read_text())) if path.is_file() else None


def choose_k(x: np.ndarray, k_range: tuple[int, int], seed: int, sample: int = 5000) -> int:
    """The K in `k_range` with the best silhouette on a sample."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    rows = x[rng.choice(len(x), min(sample, len(x)), replace=False)]
    scores = {}
    for k in range(k_range[0], min(k_range[1], len(rows) - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(rows)
        scores[k] = silhouette_score(rows, labels, random_state=seed)
    return max(scores, key=scores.get)


def match_ids(new_labels: np.ndarray, old_ids: np.ndarray, min_overlap: float) -> dict[int, int | None]:
    """New cluster index -> matched old segment id (None when unmatched), by Hungarian matching that
    maximises the customers both share."""
    from scipy.optimize import linear_sum_assignment

    clusters, olds = np.unique(new_labels), np.unique(old_ids)
    overlap = pd.crosstab(new_labels, old_ids).reindex(index=clusters, columns=olds, fill_value=0).to_numpy()
    rows, cols = linear_sum_assignment(-overlap)
    sizes = overlap.sum(axis=1)
    matched: dict[int, int | None] = {int(c): None for c in clusters}
    for r, c in zip(rows, cols, strict=True):
        if overlap[r, c] >= min_overlap * sizes[r]:
            matched[int(clusters[r])] = int(olds[c])
    return matched


def fit_segmenter(frame: pd.DataFrame, feature_names: list[str], seed: int, k: int | None,
                  k_range: tuple[int, int], previous: Segmenter | None, min_overlap: float,
                  churn: np.ndarray, spend: np.ndarray) -> tuple[Segmenter, np.ndarray]:
    """Fit K-means on `frame`, match to `previous`, name new segments. Returns the segmenter and the
    segment id of every row."""
    from sklearn.cluster import KMeans

    raw = _transform(frame, feature_names)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std[std == 0] = 1.0
    x = (raw - mean) / std
    k = k or choose_k(x, k_range, seed)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    labels = kmeans.labels_
    used_before = previous.next_id if previous else 1
    matched = match_ids(labels, previous.assign(frame), min_overlap) if previous else dict.fromkeys(range(k))
    ids, names, next_id = [], {}, used_before
    profiles = profile_table(frame, labels, feature_names, churn, spend)
    taken = {previous.names[m] for m in matched.values() if m is not None} if previous else set()
    for cluster in range(k):
        old = matched.get(cluster)
        if old is not None:
            ids.append(old)
            names[old] = previous.names[old]
        else:
            ids.append(next_id)
            names[next_id] = _unique(describe(profiles.loc[cluster], profiles.attrs["overall_spend"]), taken)
            taken.add(names[next_id])
            next_id += 1
    retired = sorted(set(previous.ids) - set(ids)) if previous else []
    segmenter = Segmenter(feature_names, mean, std, kmeans.cluster_centers_, ids, names, next_id,
                          sorted(set(previous.retired if previous else []) | set(retired)))
    return segmenter, np.asarray(ids)[labels]


def profile_table(frame: pd.DataFrame, labels: np.ndarray, feature_names: list[str], churn: np.ndarray,
                  spend: np.ndarray) -> pd.DataFrame:
    """Per segment: size, share, mean churn risk and predicted spend, revenue at risk, and each
    feature's mean as a z-score against the whole population."""
    values = frame[feature_names].to_numpy(dtype=np.float64, na_value=0.0)
    mu, sd = values.mean(axis=0), values.std(axis=0)
    sd[sd == 0] = 1.0
    z = pd.DataFrame((values - mu) / sd, columns=[f"z_{n}" for n in feature_names])
    table = z.assign(segment=labels, churn=churn, spend=spend, at_risk=churn * spend).groupby("segment").agg(
        customers=("churn", "size"), mean_churn=("churn", "mean"), mean_spend=("spend", "mean"),
        revenue_at_risk=("at_risk", "sum"), **{c: (c, "mean") for c in z.columns})
    table.insert(1, "share", table["customers"] / len(labels))
    table.attrs.update(overall_churn=float(np.mean(churn)), overall_spend=float(np.mean(spend)))
    return table


def describe(profile: pd.Series, overall_spend: float) -> str:
    """A readable name from a segment's profile row (see profile_table)."""
    churn, spend = profile["mean_churn"], profile["mean_spend"]
    value = ("high value" if spend >= 1.5 * overall_spend else
             "low value" if spend <= 0.5 * overall_spend else "mid value")
    new = profile.get("z_tenure_days", 0.0) < -0.7
    browsing = profile.get("z_sessions_30d", 0.0) > 0.5 and profile.get("z_frequency", 0.0) < 0
    if churn >= 0.85:
        return f"dormant {value}".strip()
    if new:
        return "new browsers" if browsing else f"new {value}".strip()
    if churn >= 0.5:
        return f"at risk {value}".strip() if value != "high value" else "at risk big spenders"
    if browsing:
        return "engaged browsers"
    return f"loyal {value}".strip()


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"
