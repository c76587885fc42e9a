"""Register the run's model in the BentoML store (with its lineage) and put it through the
champion/challenger gate (custintel.promotion_gate) on the run's fresh holdout: both models score
the same customers. The decision, promoted or rejected with its reasons, is appended to the
promotion ledger; a promotion moves the champion pointer and builds the Bento bundle. The whole
decision holds the registry lock, so concurrent promotions are judged one after the other.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from custintel import registry
from custintel.alerts import send_alert
from custintel.config import Settings
from custintel.errors import UserError
from custintel.features.schema import CHURN_LABEL, VALUE_LABEL
from custintel.lineage import run_lineage
from custintel.paths import DataPaths
from custintel.promotion_gate import Holdout, Scores, decide
from custintel.runs import read_json, write_json

log = logging.getLogger(__name__)
LATENCY_REPEATS = 5


def register(settings: Settings, run_dir: Path) -> str:
    """Save the run's model to the BentoML store once, with its lineage; returns its tag."""
    record = run_dir / "registered.json"
    if record.is_file():
        return read_json(record)["tag"]
    paths = DataPaths(settings.data_dir)
    lineage = run_lineage(paths, run_dir, registry.champion_tag(paths))
    card = [run_dir / "model_card.md"] if (run_dir / "model_card.md").is_file() else []
    tag = registry.save_to_store(run_dir / "model", lineage, extra_files=card)
    write_json(record, {"tag": tag})
    return tag


def _scores(predictor, holdout: pd.DataFrame) -> Scores:
    churn, spend = predictor.predict_arrays(holdout)
    return Scores(np.asarray(churn, dtype=float), np.asarray(spend, dtype=float))


def scoring_latency_ms(predictor, holdout: pd.DataFrame, batch_rows: int, seed: int) -> float:
    """Median milliseconds to score one batch of `batch_rows` holdout rows (after one warm-up)."""
    rows = np.random.default_rng(seed).integers(0, len(holdout), batch_rows)
    batch = holdout.iloc[rows].reset_index(drop=True)
    predictor.predict_arrays(batch)
    timings = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        predictor.predict_arrays(batch)
        timings.append((time.perf_counter() - start) * 1000)
    return float(np.median(timings))


def champion_groups(model_dir: Path, holdout: pd.DataFrame, champion: Scores) -> dict[str, np.ndarray]:
    """Value tier and segment of every holdout customer as the champion (the served model) assigns
    them: the groups on which the challenger must not regress."""
    from training.segments import Segmenter
    from training.tiers import ValueTiers

    groups = {}
    tiers = ValueTiers.load(model_dir)
    if tiers is not None:
        groups["tier"] = tiers.assign(champion.spend)
    segmenter = Segmenter.load(model_dir)
    if segmenter is not None:
        groups["segment"] = segmenter.assign(holdout)
    return groups


def judge(settings: Settings, holdout: pd.DataFrame, challenger_tag: str, champion_tag: str | None) -> dict:
    """Score both versions on the holdout and apply the gate."""
    from training.predictor import Predictor

    predictor = Predictor.load(registry.model_path(challenger_tag))
    challenger = _scores(predictor, holdout)
    latency = scoring_latency_ms(predictor, holdout, settings.serve.max_ids_per_request, settings.base.seed)
    champion, groups = None, {}
    if champion_tag is not None:
        champion_dir = registry.model_path(champion_tag)
        champion = _scores(Predictor.load(champion_dir), holdout)
        groups = champion_groups(champion_dir, holdout, champion)
    truth = Holdout(holdout[CHURN_LABEL].to_numpy(), holdout[VALUE_LABEL].to_numpy())
    return decide(settings.promote, truth, challenger, champion, groups, latency, settings.base.seed)


def promote(settings: Settings, run_dir: Path, tag: str, actor: dict | None = None) -> dict:
    """Gate the run's registered model `tag` against the champion; returns the decision."""
    paths = DataPaths(settings.data_dir)
    actor = actor or registry.flow_actor()
    with registry.locked(paths):
        champion = registry.champion_tag(paths)
        decision = {"challenger": tag, "champion_before": champion, "run_id": run_dir.name}
        if champion == tag:
            decision.update(promoted=False, reason="challenger is already the champion",
                            reasons=["challenger is already the champion"])
        else:
            decision.update(judge(settings, pd.read_parquet(run_dir / "holdout.parquet"), tag, champion))
            decision["reason"] = "; ".join(decision["reasons"])
            if decision["promoted"] and settings.promote.build_bento:
                from custintel.bento_bundle import build_bento

                decision["bento"] = build_bento(tag)
            entry = registry.record(
                paths, "promoted" if decision["promoted"] else "rejected", tag, actor,
                reasons=decision["reasons"], metric=decision["metric"], deltas=_deltas(decision),
                bento=decision.get("bento"), lineage=registry.model_metadata(tag))
            decision["ledger_seq"] = entry["seq"]
    if "ledger_seq" in decision:
        decision["alert_sent"] = send_alert(alert_text(decision), settings.alerts)
    log.info("promotion: promoted=%s %s", decision["promoted"], decision["reason"])
    write_json(run_dir / "promotion.json", decision)
    return decision


def _deltas(decision: dict) -> dict:
    """The metric deltas a ledger entry keeps: overall (with its CI) and per tier / segment."""
    deltas = {"challenger_value": decision["challenger_value"],
              "champion_value": decision.get("champion_value")}
    if "bootstrap" in decision:
        deltas.update({k: decision["bootstrap"][k] for k in ("delta", "ci_low", "ci_high", "confidence")})
        deltas["groups"] = {f"{g['kind']}:{g['group']}": g["delta"]
                            for g in decision["groups"] if "delta" in g}
    return deltas


def alert_text(decision: dict) -> str:
    metric, tag = decision["metric"], decision["challenger"]
    if "bootstrap" in decision:
        b = decision["bootstrap"]
        numbers = (f"{metric} {decision['challenger_value']:.4f} vs champion "
                   f"{decision['champion_value']:.4f}, delta {b['delta']:+.4f} "
                   f"({b['confidence']:.0%} CI [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}])")
    else:
        numbers = f"{metric} {decision['challenger_value']:.4f}"
    if decision["promoted"]:
        return f":rocket: custintel promoted {tag} over {decision['champion_before']}: {numbers}."
    return (f":no_entry: custintel rejected challenger {tag} (champion {decision['champion_before']} stays): "
            f"{numbers}. Reasons: {decision['reason']}")


def promote_by_hand(settings: Settings, tag: str, actor: dict, reason: str | None = None) -> dict:
    """Make a named store version the champion without the gate (ledger: manual_promotion)."""
    paths = DataPaths(settings.data_dir)
    lineage = registry.model_metadata(tag)  # must exist; resolves e.g. "customer_model:latest"
    tag = lineage["tag"]
    if registry.champion_tag(paths) == tag:
        raise UserError(f"{tag} is already the champion.")
    bento = None
    if settings.promote.build_bento:
        from custintel.bento_bundle import build_bento

        bento = build_bento(tag)
    entry = registry.promote_by_hand(paths, tag, actor, reason, bento=bento, lineage=lineage)
    entry["alert_sent"] = send_alert(
        f":rocket: custintel champion set by hand to {tag} (was {entry['champion_before']}) by "
        f"{actor.get('user')}: {entry['reasons'][0]}.", settings.alerts)
    return entry


def rollback(settings: Settings, actor: dict, reason: str | None = None) -> dict:
    entry = registry.rollback(DataPaths(settings.data_dir), actor, reason)
    entry["alert_sent"] = send_alert(
        f":rewind: custintel rolled back from {entry['champion_before']} to {entry['tag']} by "
        f"{actor.get('user')}: {entry['reasons'][0]}.", settings.alerts)
    return entry
