"""Segment and tier every current customer after training, score them all (batch scoring) and
report against the champion: segment profiles, migration matrix, revenue at risk, a ranked
retention list with the playbook's action.

Writes into the run directory:
    model/segments.json, model/tiers.json, model/segment_profiles.json  (served with the model)
    scores.parquet            every customer: churn, spend, tier, segment, revenue at risk, action
    retention_targets.csv     customers not inactive, ranked by revenue at risk
    segments.json             profiles, migration vs the champion, stability (ARI), revenue at risk
    migration.png             heatmap of champion segment -> new segment shares
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from custintel import registry
from custintel.batch_scoring import ScoringModel, read_latest_snapshot, score_customers, suggested_action
from custintel.config import Settings
from custintel.features.schema import ENTITY_KEY, TIMESTAMP
from custintel.paths import DataPaths
from custintel.runs import write_json

log = logging.getLogger(__name__)
PROFILES_FILE = "segment_profiles.json"


def current_customers(settings: Settings) -> pd.DataFrame:
    """Every customer's features at the newest snapshot (what the online store serves)."""
    return read_latest_snapshot(DataPaths(settings.data_dir).features_file)


def _previous_segmenter(settings: Settings):
    from training.segments import Segmenter

    tag = registry.champion_tag(DataPaths(settings.data_dir))
    if tag is None:
        return None, None
    try:
        return Segmenter.load(registry.model_path(tag)), tag
    except Exception as exc:  # a champion that cannot be read must not block training: start fresh ids
        log.warning("cannot read the champion's segments (%s); segment ids start afresh", exc)
        return None, tag


def segment_customers(settings: Settings, run_dir: Path, predictor) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from training.segments import fit_segmenter, profile_table
    from training.tiers import fit_tiers

    customers = current_customers(settings)
    churn, spend = predictor.predict_arrays(customers)
    names = predictor.feature_names
    cfg = settings.segments
    sample = np.random.default_rng(settings.base.seed).permutation(len(customers))[:cfg.fit_sample]
    previous, champion = _previous_segmenter(settings)
    segmenter, _ = fit_segmenter(customers.iloc[sample].reset_index(drop=True), names, settings.base.seed,
                                 cfg.k, cfg.k_range, previous, cfg.min_overlap, churn[sample], spend[sample])
    segment_ids = segmenter.assign(customers)
    tcfg = settings.tiers
    tiers = fit_tiers(spend, tcfg.names, tcfg.inactive_below, tcfg.quantiles, tcfg.thresholds)
    model_dir = run_dir / "model"
    segmenter.save(model_dir)
    tiers.save(model_dir)

    profiles = profile_table(customers, segment_ids, names, churn, spend)
    profiles.insert(0, "name", [segmenter.names[i] for i in profiles.index])
    profiles["top_categories"] = top_categories(settings, customers, segment_ids).reindex(profiles.index)
    profiles["at_risk"] = profiles["mean_churn"] > cfg.risky_churn
    profiles["action"] = [suggested_action(n, settings.playbook) for n in profiles["name"]]
    profile_records = profiles.reset_index().rename(columns={"segment": "segment_id"}).to_dict("records")
    write_json(model_dir / PROFILES_FILE, {"segments": profile_records})

    scores = score_customers(customers, ScoringModel(predictor, tiers, segmenter), settings.playbook,
                             churn=churn, spend=spend)
    scores.to_parquet(run_dir / "scores.parquet", index=False)
    scores[scores["value_tier"] != "inactive"].to_csv(run_dir / "retention_targets.csv", index=False)

    report = {
        "k": len(segmenter.ids), "segments": profile_records, "retired_ids": segmenter.retired,
        "customers": len(customers), "snapshot": str(customers[TIMESTAMP].max()),
        "tiers": {"edges": list(tiers.edges), "names": list(tiers.order)},
        "revenue_at_risk_by_tier": scores.groupby("value_tier")["revenue_at_risk"].sum().to_dict(),
        "champion": champion, "migration": None, "ari_vs_champion": None,
    }
    if previous is not None:
        before = previous.assign(customers)
        report["ari_vs_champion"] = float(adjusted_rand_score(before, segment_ids))
        report["migration"] = migration_report(before, segment_ids, previous.names, segmenter.names,
                                               set(profiles.index[profiles["at_risk"]]))
        plot_migration(report["migration"], run_dir / "migration.png")
    write_json(run_dir / "segments.json", report)
    log.info("%d segments (%s); ARI vs champion %s", report["k"],
             ", ".join(f"{r['segment_id']}: {r['name']} ({r['customers']})" for r in profile_records),
             report["ari_vs_champion"])
    return report


def top_categories(settings: Settings, customers: pd.DataFrame, segment_ids: np.ndarray,
                   n: int = 3) -> pd.Series:
    """Per segment, its `n` largest categories by spend before the snapshot with their spend share
    (e.g. "books 41%, toys 22%, garden 9%"); empty where the data has no categories."""
    orders_file = DataPaths(settings.data_dir).clean / "orders.parquet"
    orders = pd.read_parquet(orders_file, columns=["customer_id", "order_ts", "amount", "category"])
    snapshot = customers[TIMESTAMP].max()
    orders = orders[(orders["order_ts"] < snapshot) & orders["category"].notna()]
    segment_of = pd.Series(segment_ids, index=customers[ENTITY_KEY].to_numpy())
    orders = orders.assign(segment=orders["customer_id"].map(segment_of)).dropna(subset=["segment"])
    spend = orders.groupby(["segment", "category"])["amount"].sum()
    if spend.empty:
        return pd.Series(dtype=object)

    def describe(block: pd.Series) -> str:
        block = block.droplevel(0)
        top = (block / block.sum()).nlargest(n)
        return ", ".join(f"{category} {share:.0%}" for category, share in top.items())

    out = spend.groupby(level=0).apply(describe)
    out.index = out.index.astype(int)
    return out


def migration_report(before: np.ndarray, after: np.ndarray, old_names: dict[int, str],
                     new_names: dict[int, str], risky: set[int]) -> dict:
    """Champion segment -> challenger segment counts and row shares; moves into at-risk segments."""
    counts = pd.crosstab(pd.Series(before, name="champion"), pd.Series(after, name="challenger"))
    shares = counts.div(counts.sum(axis=1), axis=0)
    moved_into_risky = (~pd.Series(before).isin(list(risky)).to_numpy() & np.isin(after, list(risky)))
    same_id = before == after
    return {
        "rows": [f"{i}: {old_names.get(i, '?')}" for i in counts.index],
        "columns": [f"{i}: {new_names.get(i, '?')}" for i in counts.columns],
        "counts": counts.to_numpy().tolist(), "shares": shares.round(4).to_numpy().tolist(),
        "kept_segment": float(same_id.mean()), "moved_into_risky": int(moved_into_risky.sum()),
        "moved_into_risky_share": float(moved_into_risky.mean()),
    }


def plot_migration(migration: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = np.asarray(migration["shares"])
    fig, ax = plt.subplots(figsize=(1.2 * shares.shape[1] + 3, 0.6 * shares.shape[0] + 2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(shares.shape[1]), migration["columns"], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(shares.shape[0]), migration["rows"], fontsize=8)
    for (i, j), value in np.ndenumerate(shares):
        ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")
    ax.set(xlabel="challenger segment", ylabel="champion segment",
           title="Where each champion segment's customers are now")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def slack_summary(report: dict, settings: Settings, run_id: str) -> str:
    """The retrain summary posted to Slack: sizes, notable migrations, revenue at risk by tier."""
    sizes = ", ".join(f"{r['name']} {r['customers']}" for r in report["segments"])
    lines = [f":bar_chart: custintel retrain {run_id}: {report['k']} segments ({sizes})."]
    migration = report.get("migration")
    if migration and migration["moved_into_risky_share"] > settings.segments.migration_alert_share:
        lines.append(f":warning: {migration['moved_into_risky']} customers "
                     f"({migration['moved_into_risky_share']:.1%}) moved into at-risk segments.")
    at_risk = report["revenue_at_risk_by_tier"]
    lines.append("Revenue at risk by tier: " + ", ".join(
        f"{tier} {at_risk[tier]:,.0f}" for tier in report["tiers"]["names"] if tier in at_risk) + ".")
    return " ".join(lines)
