"""The service's settings, read once from environment variables by :meth:`Settings.from_env`.

Nothing reads ``os.environ`` on import: the CLI (or ``serving.app.app_from_env``) builds a
:class:`Settings` from the environment it is given and passes it to ``create_app``.

| variable | field | default |
|---|---|---|
| ``NBA_DATABASE_URL`` | database_url | ``sqlite:///nba.db`` |
| ``NBA_DATABASE_SCHEMA`` | database_schema | none (PostgreSQL only: put the tables in a schema) |
| ``MLFLOW_TRACKING_URI`` | tracking_uri | ``sqlite:///mlflow.db`` |
| ``NBA_MODEL_ALIAS`` | model_alias | ``champion`` |
| ``NBA_RELOAD_INTERVAL_S`` | reload_interval_s | 30 (0 turns polling off) |
| ``NBA_CORS_ORIGINS`` | cors_origins | none (comma-separated list) |
| ``NBA_CRM_ORIGINS`` | crm_origins | none (comma-separated; origins allowed to frame the pages) |
| ``NBA_MAX_BODY_BYTES`` | max_body_bytes | 8 MiB |
| ``NBA_MAX_EVENTS_PER_REQUEST`` | max_events_per_request | 10,000 |
| ``NBA_EXPLORATION_RATE`` | exploration_rate | the arbitration config's (2 %) |
| ``NBA_ARBITRATION_CONFIG`` | arbitration_config | the shipped ``models/config/arbitration.yaml`` |
| ``NBA_TAXONOMY`` | taxonomy | the shipped ``features/config/taxonomy.yaml`` |
| ``NBA_ATTRIBUTES`` | attributes | none (YAML of custom attributes ingestion accepts) |
| ``NBA_KEY_CACHE_TTL_S`` | key_cache_ttl_s | 5 |
| ``NBA_CACHE_ENTRIES`` | cache_entries | 20,000 accounts (scored accounts cached per worker) |
| ``NBA_FEATURE_TTL_S`` | feature_ttl_s | 3600 |
| ``NBA_SCORE_MAX_AGE_S`` | score_max_age_s | 86400 (stored account scores a worklist reuses) |
| ``NBA_RANDOM_SEED`` | random_seed | none (fresh entropy per worker) |
| ``NBA_SERVED_LOG_FLUSH_S`` | served_log_flush_s | 0.05 (0: log in the request) |
| ``NBA_SERVED_LOG_DIR`` | served_log_dir | next to a SQLite file, else in the temp directory |
| ``NBA_MAX_INFLIGHT`` | max_inflight | 32 (``/v1`` requests in progress per worker) |
| ``NBA_MAX_INGEST_INFLIGHT`` | max_ingest_inflight | 2 (event batches in progress per worker) |
| ``NBA_MAX_QUEUE_MS`` | max_queue_ms | 50 (shed ``/v1`` requests that waited longer; 0: off) |
| ``NBA_HEADER_TIMEOUT_S`` | header_timeout_s | 10 (a request's head must arrive within it) |
| ``NBA_CURRENCY`` | currency | none: values are in points (an ISO 4217 code such as EUR) |
| ``NBA_ONLINE_LEARNING`` | online_learning | true (Thompson sampling on the online posterior) |
| ``NBA_ONLINE_PRIOR_STRENGTH`` | online_prior_strength | 1500 (the model's prior, in decisions) |
| ``NBA_ONLINE_DRAW_SHARE`` | online_draw_share | 1 (share of decisions drawing the top slot) |
| ``NBA_ONLINE_REFRESH_S`` | online_refresh_s | 2 (seconds between reads of the shared counts) |
| ``NBA_CHALLENGER_SHARE`` | challenger_share | 0.2 (top slots given to the version on trial) |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.errors import InvalidInputError
from models.contract import CHAMPION
from serving.store import DEFAULT_DATABASE_URL, MAX_BATCH_EVENTS

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# The unit of values when no currency is set: the catalog's relative business value.
POINTS = "points"


class SettingsError(InvalidInputError):
    """An environment variable with a value the service cannot use; the message names the
    variable, its value and what was expected."""


class Settings(BaseModel):
    """Everything the service is configured with (see the module docstring for the
    environment variables). Immutable; build it with :meth:`from_env` or directly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, min_length=1)
    database_schema: str | None = None
    tracking_uri: str = Field(default=DEFAULT_TRACKING_URI, min_length=1)
    model_alias: str = Field(default=CHAMPION, min_length=1)
    reload_interval_s: float = Field(default=30.0, ge=0)
    cors_origins: tuple[str, ...] = ()
    # CSP frame-ancestors of the widget and worklist pages (besides 'self'): scheme://host[:port]
    crm_origins: tuple[Annotated[str, Field(pattern=r"^https?://[^\s;,'\"/]+$")], ...] = ()
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_events_per_request: int = Field(default=MAX_BATCH_EVENTS, ge=1, le=MAX_BATCH_EVENTS)
    exploration_rate: float | None = Field(default=None, ge=0, le=1)
    arbitration_config: Path | None = None
    taxonomy: Path | None = None
    # Custom attributes ingested events and accounts may carry (features.attributes).
    attributes: Path | None = None
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    cache_entries: int = Field(default=20_000, ge=1)
    feature_ttl_s: float = Field(default=3600.0, gt=0)
    # Stored account scores (``nba score``, worklists) older than this are recomputed: a
    # nightly ``nba score`` keeps every rep's first worklist view of the day precomputed.
    score_max_age_s: float = Field(default=86_400.0, gt=0)
    random_seed: int | None = None
    served_log_flush_s: float = Field(default=0.05, ge=0, le=10)
    served_log_dir: Path | None = None
    max_inflight: int = Field(default=32, ge=1)
    # A request that waited longer than this between its head arriving and its first step
    # in the app is shed: its client would get the answer too late to be of use, and the
    # time spent on it would make every request behind it later still.
    max_queue_ms: float = Field(default=50.0, ge=0)
    # Event batches a worker parses and stores at once: each holds up to 10,000 records in
    # memory, so this bounds a worker's memory under concurrent bulk ingestion.
    max_ingest_inflight: int = Field(default=2, ge=1)
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # The currency the catalog's item values (and so expected values) are in, an ISO 4217
    # code; None: they are relative points.
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @property
    def value_unit(self) -> str:
        """The unit of values in answers and pages: the currency code, else "points"."""
        return self.currency or POINTS

    # Learning between retrains (models.arbitration.thompson): the top slot is drawn by
    # Thompson sampling on a calibration posterior per (phase, item) whose prior is the
    # model's prediction weighted as this many decisions at the candidate's rate; the
    # counts are read every refresh. At 50 a predicted 7 % response rate had a standard
    # deviation of about 3.6 points, as wide as the differences between the items the model
    # ranks: the draw was near uniform among the top items and served 15 % less true
    # response than the greedy champion in the closed loop (600 accounts, weeks 1-2: 0.059
    # vs 0.070). At 500 it is 1.2 points, the model's own error on a trained item. At 1500
    # (0.7 points) the calibration posterior served more of the oracle in the same loop on
    # three seeds over all 26 weeks (0.0840 / 0.0902 / 0.0753 against 0.0813 / 0.0860 /
    # 0.0731 at 500) and its log judged the challengers as well or better: after 26 weeks
    # the median (phase, item) key still holds no rewarded decision, so what a draw explores
    # is seldom learnt within a model's life, while every draw pays for it at once.
    online_learning: bool = True
    online_prior_strength: float = Field(default=1500.0, gt=0)
    # The share of decisions whose top slot is drawn from the posterior; the rest serve the
    # best posterior mean (models.arbitration.thompson.top_probabilities).
    online_draw_share: float = Field(default=1.0, ge=0, le=1)
    online_refresh_s: float = Field(default=2.0, ge=0, le=3600)
    # A next-content version under trial (``nba challenge``, the ``challenger`` alias) gets
    # its own pick in this share of the decisions, so that ``nba promote`` judges it on
    # decisions it served (importance weights at most 1 / share on its picks) rather than on
    # the few the champion's exploration happened to serve (weights up to 1 / 0.01).
    challenger_share: float = Field(default=0.2, ge=0, lt=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from the variables in ``environ`` (e.g. ``os.environ``); unset or empty
        variables keep their defaults. Raises :class:`SettingsError` naming the variable."""
        values: dict[str, Any] = {}
        for variable, name in ENV_VARIABLES.items():
            raw = environ.get(variable)
            if raw is None or not raw.strip():
                continue
            raw = raw.strip()
            if name in ("cors_origins", "crm_origins"):
                values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
            else:
                values[name] = raw
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            env_of = {v: k for k, v in ENV_VARIABLES.items()}
            parts = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else ""
                variable = env_of.get(field, field)
                parts.append(f"{variable}={values.get(field)!r}: {err['msg']}")
            raise SettingsError("invalid settings: " + "; ".join(parts)) from exc


# Environment variable -> Settings field.
ENV_VARIABLES: dict[str, str] = {
    "NBA_DATABASE_URL": "database_url",
    "NBA_DATABASE_SCHEMA": "database_schema",
    "MLFLOW_TRACKING_URI": "tracking_uri",
    "NBA_MODEL_ALIAS": "model_alias",
    "NBA_RELOAD_INTERVAL_S": "reload_interval_s",
    "NBA_CORS_ORIGINS": "cors_origins",
    "NBA_CRM_ORIGINS": "crm_origins",
    "NBA_MAX_BODY_BYTES": "max_body_bytes",
    "NBA_MAX_EVENTS_PER_REQUEST": "max_events_per_request",
    "NBA_EXPLORATION_RATE": "exploration_rate",
    "NBA_ARBITRATION_CONFIG": "arbitration_config",
    "NBA_TAXONOMY": "taxonomy",
    "NBA_ATTRIBUTES": "attributes",
    "NBA_KEY_CACHE_TTL_S": "key_cache_ttl_s",
    "NBA_CACHE_ENTRIES": "cache_entries",
    "NBA_FEATURE_TTL_S": "feature_ttl_s",
    "NBA_SCORE_MAX_AGE_S": "score_max_age_s",
    "NBA_RANDOM_SEED": "random_seed",
    "NBA_SERVED_LOG_FLUSH_S": "served_log_flush_s",
    "NBA_SERVED_LOG_DIR": "served_log_dir",
    "NBA_MAX_INFLIGHT": "max_inflight",
    "NBA_MAX_INGEST_INFLIGHT": "max_ingest_inflight",
    "NBA_MAX_QUEUE_MS": "max_queue_ms",
    "NBA_HEADER_TIMEOUT_S": "header_timeout_s",
    "NBA_CURRENCY": "currency",
    "NBA_ONLINE_LEARNING": "online_learning",
    "NBA_ONLINE_PRIOR_STRENGTH": "online_prior_strength",
    "NBA_ONLINE_DRAW_SHARE": "online_draw_share",
    "NBA_ONLINE_REFRESH_S": "online_refresh_s",
    "NBA_CHALLENGER_SHARE": "challenger_share",
}
