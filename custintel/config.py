"""Typed configuration loaded once from `params.yaml`.

    from custintel.config import load_settings
    settings = load_settings("params.yaml")
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from custintel.errors import UserError

DATA_DIR_ENV = "CUSTINTEL_DATA_DIR"
PARAMS_ENV = "CUSTINTEL_PARAMS"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseSection(_Section):
    seed: int = Field(42, description="One seed for data generation, splits, tuning and training.")


class PathsSection(_Section):
    data_dir: str = Field("data", description="Everything a run writes lives here.")


class DataSection(_Section):
    n_customers: int = Field(20000, ge=10, description="Customers simulated by the generator.")
    start_date: date = Field(date(2024, 1, 1), description="First day of simulated history.")
    end_date: date = Field(date(2025, 12, 31), description="Last day of simulated history.")
    n_categories: int = Field(8, ge=1, le=50, description="Product categories.")
    scenario: Literal["none", "price_inflation", "new_customer_surge", "churn_wave", "category_shift",
                      "broken_feed"] = Field("none", description="Drift scenario (custintel.data.scenarios).")
    scenario_start: date | None = Field(None, description="The scenario applies from this date on.")
    max_bad_fraction: float = Field(0.05, ge=0, le=1,
                                    description="Stop when a table quarantines more than this share.")
    simulate_until: date | None = Field(
        None, description="Simulate the world up to this later date but keep only what happened before "
                          "end_date: moving end_date forward then reveals more of the same world (each "
                          "history is a prefix of the next), as a daily feed would. None: up to end_date.")

    @model_validator(mode="after")
    def _dates_in_order(self) -> DataSection:
        if self.end_date <= self.start_date + timedelta(days=60):
            raise ValueError("end_date must be at least 60 days after start_date")
        if self.simulate_until is not None and self.simulate_until < self.end_date:
            raise ValueError("simulate_until must be on or after end_date (or left out)")
        if self.scenario != "none":
            if self.scenario_start is None:
                raise ValueError("scenario_start is required when scenario is not 'none'")
            if not self.start_date < self.scenario_start < self.end_date:
                raise ValueError("scenario_start must lie strictly between start_date and end_date")
        return self


class ColumnMapping(_Section):
    """Which column of an imported transaction log holds each field (None = the log lacks it)."""

    customer_id: str = Field("customer_id", description="Customer id column (integers, or any text).")
    timestamp: str = Field("timestamp", description="Transaction time or date column.")
    amount: str = Field("amount", description="Amount paid column.")
    quantity: str | None = Field(None, description="Items bought, if the log has it.")
    product: str | None = Field(None, description="Product id or name, if the log has it.")
    category: str | None = Field(None, description="Product category, if the log has it.")


class SourceSection(_Section):
    kind: Literal["generator", "file"] = Field("generator", description="Generate data, or import a log.")
    path: str | None = Field(None, description="Log to import: a file path, or package:<package>/<file> "
                                               "for a file shipped inside an installed Python package.")
    format: Literal["auto", "csv", "whitespace", "parquet"] = Field(
        "auto", description="auto: by extension (.csv, .parquet/.pq; anything else whitespace-separated).")
    columns: ColumnMapping = ColumnMapping()
    timestamp_format: str | None = Field(None, description="strptime format, e.g. %Y%m%d; None = inferred.")

    @model_validator(mode="after")
    def _path_for_files(self) -> SourceSection:
        if self.kind == "file" and not self.path:
            raise ValueError("source.path is required when source.kind is 'file' (e.g. "
                             "package:lifetimes/datasets/CDNOW_master.txt or a path to your CSV/parquet log)")
        return self


class VersioningSection(_Section):
    remote_url: str | None = Field(None, description="DVC remote; None = <data_dir>/dvc-remote.")
    revision: str | None = Field(None, description="Pin a catalogued data version (tag, hash or prefix).")


class FeaturesSection(_Section):
    horizon_days: int = Field(90, ge=7, le=730, description="Prediction horizon in days.")
    first_snapshot: date = Field(date(2024, 7, 1), description="First point-in-time snapshot.")
    snapshot_every_days: int = Field(30, ge=1, description="Spacing between snapshots.")


class FeatureStoreSection(_Section):
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store: sqlite (a file under <data_dir>/feast) or redis.")
    redis_url: str | None = Field(
        None, description="Redis to use when online_store is redis: redis://[:password@]host:port[/db] "
                          "(rediss:// for TLS) or Feast's connection string host:port[,db=0,password=...].")
    materialize_chunk_rows: int = Field(
        50_000, ge=100, description="Rows read from the offline parquet, and entities written, per chunk.")
    sqlite_sync: Literal["full", "off"] = Field(
        "full", description="SQLite's `synchronous` while materializing into the SQLite online store: full "
                            "(each commit waits for the disk) or off (faster; an OS crash or power cut "
                            "during the load can corrupt the file: delete it and materialize again).")
    sqlite_layout: Literal["compact", "feast"] = Field(
        "compact", description="How the SQLite online store's tables are stored: compact (WITHOUT ROWID, no "
                               "second entity_key index: same rows, faster loads, half the file) or feast "
                               "(Feast's own layout, needed only for Feast's vector search).")

    @field_validator("sqlite_sync", mode="before")
    @classmethod
    def _unquoted_off(cls, value):
        """YAML 1.1 reads an unquoted `off` as false: take it as the word that was written."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _redis_needs_url(self) -> FeatureStoreSection:
        if self.online_store == "redis":
            if not self.redis_url:
                raise ValueError("feature_store.redis_url is required when feature_store.online_store is "
                                 "'redis' (e.g. redis://localhost:6379/0)")
            feast_connection_string(self.redis_url)  # raises ValueError naming the key
        return self

    def feast_redis_connection_string(self) -> str:
        """redis_url as Feast's `host:port,key=value` connection string."""
        return feast_connection_string(self.redis_url or "")


def feast_connection_string(url: str) -> str:
    """Feast's Redis connection string for a redis:// URL or an already Feast-style string."""
    from urllib.parse import unquote, urlsplit

    bad = (f"feature_store.redis_url {url!r} is not a Redis address; use redis://host:port/db "
           "(rediss:// for TLS) or host:port[,db=0,password=...]")
    if "://" in url:
        parts = urlsplit(url)
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(bad) from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(bad)
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise ValueError(f"{bad} (the database number {db!r} is not an integer)")
        options = [f"{parts.hostname}:{port}", f"db={db}"]
        if parts.username:
            options.append(f"username={unquote(parts.username)}")
        if parts.password:
            options.append(f"password={unquote(parts.password)}")
        if parts.scheme == "rediss":
            options.append("ssl=true")
        return ",".join(options)
    nodes = [part for part in url.split(",") if "=" not in part]
    if not nodes or any(not re.fullmatch(r"[^:\s]+:\d{1,5}", node) for node in nodes):
        raise ValueError(bad)
    return url


class TuningSection(_Section):
    n_trials: int = Field(4, ge=1, description="Optuna trials.")
    timeout_s: float | None = Field(None, gt=0, description="Optional wall-clock cap for the study.")
    storage: str | None = Field(None, description="SQLAlchemy URL; None = SQLite in the data dir.")
    hidden_dim: tuple[int, int] = (32, 128)
    n_layers: tuple[int, int] = (1, 3)
    dropout: tuple[float, float] = (0.0, 0.3)
    lr: tuple[float, float] = (3e-4, 1e-2)
    weight_decay: tuple[float, float] = (1e-6, 1e-3)
    value_loss_weight: tuple[float, float] = (0.2, 2.0)
    batch_size: tuple[int, int] | None = Field((256, 2048), description="None = train.batch_size.")
    pruner: Literal["median", "none"] = Field("median", description="Stop weak trials early on val_score.")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> TuningSection:
        for name in ("hidden_dim", "n_layers", "dropout", "lr", "weight_decay", "value_loss_weight",
                     "batch_size"):
            if getattr(self, name) is None:
                continue
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low bound {low} is above high bound {high}")
        return self


class TrainSection(_Section):
    max_epochs: int = Field(12, ge=1)
    patience: int = Field(3, ge=1, description="Early-stopping patience in epochs.")
    batch_size: int = Field(512, ge=8, description="Batch size when tuning.batch_size is null.")
    num_workers: int = Field(0, ge=0)
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="Learning rate over a fit: cosine (annealed to zero over the fit's epochs) "
                              "or constant.")
    tuning: TuningSection = TuningSection()


class SegmentsSection(_Section):
    k: int | None = Field(None, ge=2, description="Fixed number of segments; None = chosen by silhouette.")
    k_range: tuple[int, int] = Field((3, 8), description="Range searched when k is None.")
    min_overlap: float = Field(0.5, gt=0, le=1, description="Share of a new segment that must come from an "
                                                            "old one for it to keep the old id and name.")
    fit_sample: int = Field(50000, ge=100, description="Customers the K-means is fitted on.")
    risky_churn: float = Field(0.5, gt=0, lt=1, description="At-risk segments: mean churn above.")
    migration_alert_share: float = Field(0.05, ge=0, le=1, description="Slack calls a move into at-risk "
                                                                       "segments notable above this share.")

    @model_validator(mode="after")
    def _range_ordered(self) -> SegmentsSection:
        if not 2 <= self.k_range[0] <= self.k_range[1]:
            raise ValueError("k_range must be [low, high] with 2 <= low <= high")
        return self


class TiersSection(_Section):
    names: tuple[str, ...] = Field(("low", "mid", "high"), min_length=2, description="Lowest first.")
    quantiles: tuple[float, ...] | None = Field((0.5, 0.8), description="Cut points: quantiles of active "
                                                                        "customers' predicted spend.")
    thresholds: tuple[float, ...] | None = Field(None, description="Absolute spend cut points (instead).")
    inactive_below: float = Field(1.0, ge=0, description="Predicted spend below this: tier 'inactive'.")

    @model_validator(mode="after")
    def _cuts_match_names(self) -> TiersSection:
        if (self.quantiles is None) == (self.thresholds is None):
            raise ValueError("set exactly one of quantiles and thresholds (the other null)")
        cuts = self.quantiles if self.quantiles is not None else self.thresholds
        if len(cuts) != len(self.names) - 1:
            raise ValueError(f"{len(self.names)} tier names need {len(self.names) - 1} cut points, "
                             f"got {len(cuts)}")
        if list(cuts) != sorted(cuts) or (self.quantiles is not None and not all(0 < q < 1 for q in cuts)):
            raise ValueError("cut points must ascend (quantiles strictly between 0 and 1)")
        if "inactive" in self.names:
            raise ValueError("'inactive' is reserved for customers below inactive_below")
        return self


class DriftQualitySection(_Section):
    """Data-quality checks that tell a broken feed (failed run, alert, no retrain) from genuine drift."""

    max_null_increase: float = Field(0.05, ge=0, le=1, description="A feature whose null share rises by "
                                                                   "more than this is broken.")
    range_margin: float = Field(0.5, ge=0, description="The reference [min, max] is widened by this x "
                                                       "(max - min) on each side before out-of-range counts.")
    max_out_of_range: float = Field(0.01, ge=0, le=1, description="Broken above this share of current "
                                                                  "values outside the widened range.")
    max_new_categories: float = Field(0.01, ge=0, le=1, description="Broken above this share of current "
                                                                    "values of a category unseen in the "
                                                                    "reference.")


class DriftPolicySection(_Section):
    """What a monitoring run does: no action, alert only, or retrain."""

    alert_share: float = Field(0.1, ge=0, le=1, description="Alert when more than this share of the "
                                                            "features drifts (or a prediction drifts).")
    alert_severity: float = Field(2.0, ge=1, description="Alert when any feature's drift statistic "
                                                         "reaches this multiple of its threshold, whatever "
                                                         "the share.")
    retrain_share: float = Field(0.3, ge=0, le=1, description="Retrain when more than this share drifts.")
    retrain_importance_share: float = Field(0.3, ge=0, le=1, description="Retrain when the drifted "
                                                                         "features carry more than this "
                                                                         "share of the model's importance.")
    retrain_auc_drop: float = Field(0.03, ge=0, description="Retrain when the realised churn AUC on matured "
                                                            "labels is more than this below the holdout AUC.")
    retrain_mae_increase: float = Field(0.2, ge=0, description="Retrain when the realised value MAE is more "
                                                               "than this share above the holdout MAE.")

    @model_validator(mode="after")
    def _ordered(self) -> DriftPolicySection:
        if self.retrain_share < self.alert_share:
            raise ValueError("retrain_share must be >= alert_share")
        return self


class DriftSection(_Section):
    sample_size: int = Field(20000, ge=100, description="Rows sampled per side for the drift tests.")
    wasserstein_threshold: float = Field(0.1, gt=0, description="Continuous features drift at a Wasserstein "
                                                                "distance of this many reference std-devs.")
    quantile_psi_threshold: float = Field(0.01, gt=0, description="Numeric features also drift at this PSI "
                                                                  "over bins at the reference quantiles.")
    quantile_bins: int = Field(10, ge=2, le=100, description="Bins (reference quantiles) of quantile_psi.")
    psi_threshold: float = Field(0.1, gt=0, description="Categorical features drift at this PSI over values.")
    psi_alpha: float = Field(0.0001, gt=0, lt=1, description="Small samples: a PSI threshold is raised to "
                                                            "what no drift exceeds with this probability.")
    wasserstein_alpha: float = Field(0.0001, gt=0, lt=1,
                                     description="Small samples: the Wasserstein threshold is raised to what "
                                                 "no drift exceeds with about this probability.")
    report_sample: int = Field(5000, ge=100, description="Rows per side in the Evidently HTML report.")
    report_features: int = Field(12, ge=1, description="Features (most drifted first) in the HTML report.")
    importance_rows: int = Field(2000, ge=100, description="Reference rows for the permutation importance.")
    quality: DriftQualitySection = DriftQualitySection()
    policy: DriftPolicySection = DriftPolicySection()


class BootstrapSection(_Section):
    n_resamples: int = Field(1000, ge=10, description="Paired bootstrap resamples of the holdout customers.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the delta's interval.")


class CalibrationSection(_Section):
    max_gap: float = Field(0.05, ge=0, le=1, description="|mean predicted - observed churn| limit.")
    max_ece: float = Field(0.10, ge=0, le=1, description="Expected calibration error limit (10 bins).")


class PromoteSection(_Section):
    metric: Literal["churn_auc", "value_spearman", "neg_value_mae"] = "churn_auc"
    min_improvement: float = Field(0.0, description="A challenger must win by more than this.")
    bootstrap: BootstrapSection = BootstrapSection()
    tier_tolerance: float = Field(0.02, ge=0, description="Largest metric loss allowed on any value tier.")
    segment_tolerance: float = Field(0.02, ge=0, description="Largest metric loss allowed on any segment.")
    min_group_rows: int = Field(50, ge=1, description="Tiers/segments with fewer holdout rows are skipped.")
    calibration: CalibrationSection = CalibrationSection()
    latency_budget_ms: float = Field(1000.0, gt=0, description="Median ms to score a max-size batch.")
    build_bento: bool = Field(True, description="Build the Bento bundle of every new champion.")


class ServeSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    max_ids_per_request: int = Field(1000, ge=1)
    reload_interval_s: float = Field(2.0, ge=0, description="Check the champion pointer this often "
                                     "and swap in a new champion (0: never).")
    max_feature_rows_per_request: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    api_key_env: str = Field("CUSTINTEL_API_KEY", min_length=1,
                             description="Env var holding the API key; unset or empty = no auth.")
    workers: int = Field(1, ge=1, description="Server worker processes (BentoML `workers`).")
    access_log: bool = Field(False, description="BentoML's access log line per request (costs CPU "
                                                "on every request; errors are logged either way).")


class AlertsSection(_Section):
    webhook_env: str = Field("CUSTINTEL_SLACK_WEBHOOK_URL", description="Env var with the webhook URL.")
    webhook_secret_block: str | None = Field(None, description="Prefect Secret block with the URL, read when "
                                                               "the env var is unset.")
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=1, description="Attempts per message.")
    backoff_s: float = Field(0.5, ge=0, description="Wait before the 2nd attempt; doubles after each.")
    min_interval_s: float = Field(3600.0, ge=0, description="At most one message of a kind per this "
                                                            "many seconds (a repeated condition never "
                                                            "re-alerts).")


class ScheduleSection(_Section):
    """Cron schedules (UTC) of the deployments that `custintel schedule` serves."""

    monitor_cron: str = Field("0 6 * * *", description="The monitor flow (it retrains when the policy "
                                                       "says so).")
    retrain_cron: str = Field("0 3 * * 0", description="The retrain flow.")
    task_retries: int = Field(3, ge=0, le=10, description="Retries of a flaky flow task (data pull, Feast "
                                                        "write, monitoring run, batch scoring); a "
                                                        "UserError is never retried.")
    retry_backoff_s: float = Field(2.0, ge=0, description="Wait before the first retry; doubles after each.")
    retry_jitter: float = Field(0.5, ge=0, le=1, description="Each wait is stretched by a random share of "
                                                            "itself up to this (0: exact waits).")

    @model_validator(mode="after")
    def _five_fields(self) -> ScheduleSection:
        for name in ("monitor_cron", "retrain_cron"):
            if len(getattr(self, name).split()) != 5:
                raise ValueError(f"{name} must be a 5-field cron expression like '0 6 * * *'")
        return self


DEFAULT_PLAYBOOK = {
    "at risk big spenders": "service call from an account manager",
    "at risk": "coupon: 15% off the next order",
    "dormant": "win-back email series",
    "new": "onboarding email with a second-order coupon",
    "default": "no action",
}


class Settings(_Section):
    base: BaseSection = BaseSection()
    paths: PathsSection = PathsSection()
    data: DataSection = DataSection()
    source: SourceSection = SourceSection()
    versioning: VersioningSection = VersioningSection()
    features: FeaturesSection = FeaturesSection()
    feature_store: FeatureStoreSection = FeatureStoreSection()
    train: TrainSection = TrainSection()
    segments: SegmentsSection = SegmentsSection()
    tiers: TiersSection = TiersSection()
    playbook: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PLAYBOOK),
                                     description="Retention action per segment-name prefix; 'default' else.")
    drift: DriftSection = DriftSection()
    promote: PromoteSection = PromoteSection()
    serve: ServeSection = ServeSection()
    alerts: AlertsSection = AlertsSection()
    schedule: ScheduleSection = ScheduleSection()

    @model_validator(mode="after")
    def _snapshots_inside_history(self) -> Settings:
        if not self.data.start_date < self.features.first_snapshot < self.data.end_date:
            raise ValueError(
                "features.first_snapshot must lie strictly between data.start_date and data.end_date"
            )
        return self

    @property
    def data_dir(self) -> Path:
        """The data directory: env CUSTINTEL_DATA_DIR wins over paths.data_dir."""
        return Path(os.environ.get(DATA_DIR_ENV) or self.paths.data_dir).expanduser().resolve()

    def snapshot_dates(self) -> list[datetime]:
        """Snapshot timestamps (UTC midnight), oldest first; the last one is the end of history."""
        end = utc_datetime(self.data.end_date)
        step = timedelta(days=self.features.snapshot_every_days)
        snaps, current = [], utc_datetime(self.features.first_snapshot)
        while current < end:
            snaps.append(current)
            current += step
        snaps.append(end)
        return snaps

    def labelled_snapshots(self) -> list[datetime]:
        """Snapshots whose whole horizon lies inside the observed history."""
        end = utc_datetime(self.data.end_date)
        horizon = timedelta(days=self.features.horizon_days)
        return [s for s in self.snapshot_dates() if s + horizon <= end]


def utc_datetime(d: date) -> datetime:
    """Midnight UTC of `d`: the end of history and snapshots are such instants."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _format_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is invalid:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key; remove it or fix its spelling")
        else:
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {key}: {err['msg']}{got_text}")
    lines.append(f"Fix the key(s) above in {source}.")
    return "\n".join(lines)


def settings_from_dict(raw: dict, source: str = "params.yaml") -> Settings:
    try:
        return Settings.model_validate(raw or {})
    except ValidationError as exc:
        raise UserError(_format_error(exc, source)) from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Load `params.yaml` (or $CUSTINTEL_PARAMS) into a validated Settings object."""
    path = Path(path or os.environ.get(PARAMS_ENV) or "params.yaml")
    if not path.is_file():
        raise UserError(f"Config file {path} not found; run from the project root or pass --params PATH.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of sections (base, paths, data, ...).")
    return settings_from_dict(raw, str(path))
