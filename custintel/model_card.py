"""The model card of a run: one markdown file with every model side by side (the trained model,
the baselines and, on generated data, the oracle), the data version, params and git commit, a
plain statement of where the model loses to a baseline, and PNG plots (calibration, deciles,
cumulative gain).

    <run_dir>/model_card.md, calibration.png, deciles.png, gain.png
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from custintel.config import Settings
from custintel.runs import read_json

# metric -> (label, higher is better); value_bias is judged by its absolute value
METRICS: dict[str, tuple[str, bool]] = {
    "churn_auc": ("churn ROC-AUC", True),
    "churn_pr_auc": ("churn PR-AUC", True),
    "churn_brier": ("churn Brier score", False),
    "churn_log_loss": ("churn log-loss", False),
    "value_mae": ("spend MAE", False),
    "value_rmse": ("spend RMSE", False),
    "value_spearman": ("spend Spearman", True),
    "value_gini": ("spend normalized Gini", True),
    "value_decile_mape": ("spend decile MAPE", False),
    "value_top10_capture": ("top-10% revenue capture", True),
    "value_bias": ("aggregate spend bias", False),
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """HEAD of the project's git checkout (+ "-dirty" with uncommitted changes), or "unknown"."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _better(metric: str, a: float, b: float) -> bool:
    """Is `a` better than `b` on `metric`?"""
    if metric == "value_bias":
        return abs(a) < abs(b)
    return a > b if METRICS[metric][1] else a < b


def losses(metrics: dict) -> list[str]:
    """Plain sentences: each metric on which a baseline beats the model."""
    model, lines = metrics["model"], []
    for metric, (label, _) in METRICS.items():
        winners = [(name, m[metric]) for name, m in metrics["baselines"].items()
                   if m and _better(metric, m[metric], model[metric])]
        if winners:
            best = ", ".join(f"{name} {value:.4g}" for name, value in winners)
            lines.append(f"- **{label}**: the model ({model[metric]:.4g}) loses to {best}.")
    return lines


def _table(metrics: dict) -> list[str]:
    columns = {"model": metrics["model"], **metrics["baselines"]}
    if metrics.get("oracle"):
        columns["Bayes-optimal (ground truth)"] = metrics["oracle"]
    if metrics.get("clairvoyant"):
        columns["clairvoyant (knows who is active)"] = metrics["clairvoyant"]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for metric, (label, higher) in METRICS.items():
        arrow = "↑" if higher else ("→0" if metric == "value_bias" else "↓")
        cells = [f"{m[metric]:.4f}" if m else "–" for m in columns.values()]
        lines.append(f"| {label} {arrow} | " + " | ".join(cells) + " |")
    return lines


def plot_curves(curves: dict, run_dir: Path) -> list[str]:
    """calibration.png, deciles.png and gain.png with every model; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, c in curves.items():
        ax.plot([p["predicted"] for p in c["calibration"]], [p["observed"] for p in c["calibration"]],
                marker="o", label=name)
    ax.set(xlabel="mean predicted churn probability (decile)", ylabel="observed churn rate",
           title="Churn calibration on the holdout")
    ax.legend(fontsize=8)
    files.append(_save(fig, run_dir / "calibration.png"))

    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        table = curves[name]["deciles"]
        deciles = [d["decile"] for d in table]
        ax.bar([d - 0.2 for d in deciles], [d["actual_mean"] for d in table], 0.4, label="actual",
               color="black")
        ax.bar([d + 0.2 for d in deciles], [d["predicted_mean"] for d in table], 0.4, label="predicted")
        ax.set(title=name, xlabel="predicted-spend decile (1 = top)", xticks=deciles)
    axes[0][0].set_ylabel("mean spend in the horizon")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Predicted vs actual spend per decile of each model's prediction")
    files.append(_save(fig, run_dir / "deciles.png"))

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    for name, c in curves.items():
        ax.plot([p["population"] for p in c["gain"]], [p["revenue"] for p in c["gain"]], label=name)
    ax.set(xlabel="share of customers (ranked by predicted spend)", ylabel="share of actual revenue",
           title="Cumulative gain")
    ax.legend(fontsize=8)
    files.append(_save(fig, run_dir / "gain.png"))
    return files


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def write_model_card(settings: Settings, run_dir: Path, metrics: dict, curves: dict) -> Path:
    spec = read_json(run_dir / "model" / "model.json")
    split = read_json(run_dir / "split.json")
    plots = plot_curves(curves, run_dir)
    lost = losses(metrics)
    lines = [
        f"# Model card: run {run_dir.name}", "",
        "Churn risk (no order in the next "
        f"{settings.features.horizon_days} days) and expected spend in that horizon, per customer.", "",
        "## Provenance", "",
        f"- data version: `{metrics['data_version']}`",
        f"- git commit: `{git_commit()}`",
        f"- feature service: `{spec.get('feature_service')}`; features: "
        + ", ".join(spec["scaler"]["feature_names"]),
        f"- hyperparameters (best Optuna trial): `{spec.get('params')}`, {spec.get('epochs')} epochs",
        f"- network: `{spec['net']}`",
        f"- seed: {settings.base.seed}", "",
        "## Split (time-based; no label window overlaps a later split)", "",
        *[f"- {name}: {part['rows']} rows, snapshots {', '.join(s[:10] for s in part['snapshots'])}"
          for name, part in split.items() if isinstance(part, dict) and "rows" in part], "",
        f"## Holdout metrics ({metrics['model']['n_rows']} customers at "
        f"{metrics['holdout_snapshot'][:10]})", "",
        *_table(metrics), "",
        "Baselines are fitted and scored on the same rows: LightGBM on the same features (train, "
        "early-stopped on validation), BG/NBD + Gamma-Gamma on each customer's transactions before "
        "the holdout snapshot (churn ranked by expected purchases), an RFM rule (recency rank, "
        "recent spend scaled to the horizon; its churn score is a rank, not a probability, so its "
        "Brier score and log-loss only show that)."
        + (" The Bayes-optimal oracle scores with the generator's true churn probability and expected "
           "spend given each customer's latent traits and purchase history: the limit from the purchase "
           "history; the clairvoyant one also knows who is still active, which no model can observe."
           if metrics.get("oracle") else ""), "",
        "## Where the model loses", "",
        *(lost or ["- Nowhere: the model is at least as good as every baseline on every metric above."]), "",
    ]
    if metrics.get("share_of_oracle"):
        share = metrics["share_of_oracle"]
        lines += [f"The model reaches {share['churn_auc']:.1%} of the oracle's churn ROC-AUC and "
                  f"{share['value_spearman']:.1%} of its spend Spearman.", ""]
    lines += ["## Plots", "", *[f"![{name}]({name})" for name in plots], ""]
    path = run_dir / "model_card.md"
    path.write_text("\n".join(lines))
    return path
