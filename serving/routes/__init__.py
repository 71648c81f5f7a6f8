"""What the routes share: the per-app :class:`Services` (store, models, scorer, metrics, ...)
that ``serving.app.create_app`` builds in its lifespan, and the Prometheus metrics.

Route modules read the services with the :func:`services` dependency and never build them
themselves, so one process can hold several apps (tests) and each uvicorn worker builds its
own after the fork.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anyio
import numpy as np
import pandas as pd
from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram

from features.taxonomy import Taxonomy
from models.arbitration import ArbitrationConfig
from serving.auth import KeyVerifier
from serving.model_holder import ModelHolder
from serving.posteriors import PosteriorCache
from serving.scoring import Scorer
from serving.settings import Settings
from serving.store import ServedLog, Store

# Latency buckets (seconds): the recommendation path aims at a p99 of 20 ms.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (several apps can live in
    one process). Model versions, reloads and cache counts are read from the holder and the
    scorer when ``/metrics`` is scraped (see ``serving.routes.health``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "nba_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nba_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "nba_events_ingested",
            "Ingested touchpoint records by outcome (accepted, duplicate, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.recommendations = Counter(
            "nba_recommendations_served",
            "Actions served (and logged) by policy.",
            ["policy"],
            registry=self.registry,
        )
        self.cold_starts = Counter(
            "nba_cold_starts",
            "Recommendation answers for accounts the store does not know.",
            registry=self.registry,
        )
        self.shed = Counter(
            "nba_http_requests_shed",
            "/v1 requests answered 503 at once: the worker held NBA_MAX_INFLIGHT requests, "
            "one waited past NBA_MAX_QUEUE_MS, or NBA_MAX_INGEST_INFLIGHT event batches were "
            "in progress.",
            registry=self.registry,
        )
        self.feedback = Counter(
            "nba_feedback",
            "Feedback recorded by outcome.",
            ["outcome"],
            registry=self.registry,
        )


@dataclass
class Services:
    """Everything a request needs, built once per app (per worker) in the lifespan."""

    settings: Settings
    taxonomy: Taxonomy
    arbitration: ArbitrationConfig
    store: Store
    served_log: ServedLog
    holder: ModelHolder
    scorer: Scorer
    keys: KeyVerifier
    metrics: Metrics
    cold_limiter: anyio.CapacityLimiter
    rng: np.random.Generator
    clock: Callable[[], pd.Timestamp]
    # The online posterior (learning between retrains); None when NBA_ONLINE_LEARNING is off.
    posteriors: PosteriorCache | None = None

    def now(self) -> pd.Timestamp:
        """The request time (UTC), from the app's clock."""
        return self.clock()


async def services(request: Request) -> Services:
    """The app's :class:`Services` (a FastAPI dependency)."""
    svc: Services = request.app.state.services
    return svc


def utc_now() -> pd.Timestamp:
    """The wall clock in UTC (the default clock)."""
    return pd.Timestamp.now(tz="UTC")
