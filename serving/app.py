"""The FastAPI app: :func:`create_app` builds it from :class:`~serving.settings.Settings`.

Everything stateful is built in the lifespan, i.e. in each uvicorn worker after the fork
(LightGBM's OpenMP threads do not survive a fork; see ``serving.model_set``): the store (and
its migrations), the model holder (loaded from the registry alias, then polled every
``reload_interval_s``), the scorer and the key verifier. ``nba serve`` runs
``uvicorn serving.app:app_from_env --factory``, so every worker also builds its own app.

Middleware, outermost first: CORS (only for the configured origins, none by default),
Prometheus request metrics (count and latency per method and route template), load shedding
(at most ``max_inflight`` ``/v1`` requests in progress per worker; beyond, 503 with
Retry-After at once) and the body-size limit (413 with a clear message).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.attributes import NO_ATTRIBUTES, resolve_attributes
from features.errors import NbaError, UnavailableError
from features.taxonomy import load_taxonomy
from models.arbitration import load_arbitration_config
from models.contract import CHAMPION
from serving.auth import KeyVerifier
from serving.http_protocol import EXTENSION, RECEIVED_AT, REQUESTS, SHED_LISTENERS
from serving.model_holder import ModelHolder
from serving.posteriors import PosteriorCache
from serving.routes import (
    Metrics,
    Services,
    docs,
    events,
    feedback,
    health,
    insights,
    pages,
    recommendations,
    reps,
    utc_now,
)
from serving.scoring import Scorer
from serving.settings import Settings
from serving.store import ServedLog, Store, default_journal_dir

log = logging.getLogger(__name__)

API_VERSION = "1.0"
# Threads per process computing features for cold accounts (see serving.routes.recommendations)
COLD_PATH_THREADS = 2
# Fewer requests than this waiting to start are no standing queue (they clear in less than
# NBA_MAX_QUEUE_MS): a request delayed by a pause of the process alone is never shed.
SHED_MIN_WAITING = 8
# Seconds a shed request's client is asked to wait before trying again.
SHED_RETRY_AFTER_S = 1
DESCRIPTION = """Next-best-action for B2B customer journeys.

Every `/v1` route needs an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`)
with the route's scope: `events:write`, `recommendations:read`, `worklists:read`,
`feedback:write` (`admin` allows all). Create one with
`nba keys create --name NAME --scopes a,b [--rep REP_ID]`; a key with a rep reads and gives
feedback on that rep's worklist and accounts only.
"""


def create_app(settings: Settings, *, clock: Callable[[], pd.Timestamp] | None = None) -> FastAPI:
    """The service configured by ``settings``. ``clock`` returns the request time (UTC;
    default: the wall clock) — tests pin it to score simulated data at a fixed time.

    Nothing is connected or loaded until the lifespan starts (``TestClient`` as a context
    manager, or uvicorn's startup)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = build_services(settings, metrics, clock or utc_now)
        app.state.services = svc
        metrics.registry.register(health.ServiceCollector(svc))
        if settings.reload_interval_s > 0:
            svc.holder.start_polling(settings.reload_interval_s)
        svc.served_log.start()
        if svc.posteriors is not None:
            svc.posteriors.start()
        SHED_LISTENERS.append(metrics.shed.inc)  # requests nba serve's protocol sheds
        # Everything loaded so far (libraries, models, the catalog) lives as long as the
        # process: out of the collector's sight, a full collection scans only what requests
        # and caches create, instead of pausing every worker for hundreds of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            SHED_LISTENERS.remove(metrics.shed.inc)
            svc.holder.stop()
            if svc.posteriors is not None:
                svc.posteriors.stop()
            svc.served_log.close()
            svc.store.dispose()

    app = FastAPI(
        title="journey-nba",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is served from the package's assets (serving.routes.docs), not a CDN
        docs_url=None,
        redoc_url=None,
    )
    for module in (events, recommendations, feedback, reps, health, pages, insights, docs):
        app.include_router(module.router)
    app.add_exception_handler(NbaError, _nba_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # Added innermost first: the last one added wraps all others.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        InflightLimit,
        max_inflight=settings.max_inflight,
        max_queue_s=settings.max_queue_ms / 1000,
        max_ingest=settings.max_ingest_inflight,
        metrics=metrics,
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
        )
    return app


class OverloadedError(UnavailableError):
    """A worker with ``max_inflight`` requests in progress sheds the next one."""

    retry_after_s = SHED_RETRY_AFTER_S


async def _nba_error(_request: Request, exc: Exception) -> JSONResponse:
    """The one translation of the project's errors to HTTP: the status follows the error's
    kind (invalid 422, not found 404, conflict 409, unavailable 503; a batch too large 413,
    feedback on another rep's account 403) and the detail is its message, as FastAPI's own
    errors put it."""
    assert isinstance(exc, NbaError)
    return error_response(exc)


def error_response(exc: NbaError) -> JSONResponse:
    """The answer to ``exc`` (see :func:`_nba_error`); one that passes on its own (a busy
    worker or store) says when to try again."""
    retry_after = exc.retry_after_s if isinstance(exc, UnavailableError) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status, headers=headers)


class _AsciiJSONResponse(JSONResponse):
    """JSON with everything outside ASCII escaped: any string, even one holding a lone
    surrogate (which UTF-8 cannot encode), becomes valid JSON."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """Returns FastAPI's own 422 answer to a request its models reject (``detail``: one
    ``{loc, msg, type, input}`` per problem), ASCII-escaped: it echoes the input, and a lone
    surrogate in it (``"\\ud800"`` in a JSON body) would otherwise turn the 422 into a 500."""
    assert isinstance(exc, RequestValidationError)
    return _AsciiJSONResponse(
        {"detail": jsonable_encoder(exc.errors())},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def app_from_env() -> FastAPI:
    """The app configured from this process's environment (uvicorn's factory)."""
    return create_app(Settings.from_env(os.environ))


def build_services(
    settings: Settings, metrics: Metrics, clock: Callable[[], pd.Timestamp]
) -> Services:
    """Connect and migrate the store, load the models (a failure leaves the app up and not
    ready: see ``/ready``) and build the scorer."""
    taxonomy = load_taxonomy(settings.taxonomy)
    arbitration = load_arbitration_config(settings.arbitration_config)
    if settings.exploration_rate is not None:
        arbitration = arbitration.model_copy(update={"exploration_rate": settings.exploration_rate})
    store = Store(
        settings.database_url,
        taxonomy,
        schema=settings.database_schema,
        attributes=resolve_attributes(NO_ATTRIBUTES, settings.attributes),
    )
    store.migrate()
    holder = ModelHolder(
        settings.tracking_uri,
        settings.model_alias,
        tuple(taxonomy.phases),
        # a trial runs against the champion: a service of another alias tries nothing
        challenger=settings.challenger_share > 0 and settings.model_alias == CHAMPION,
    )
    if not holder.load():
        log.error(
            "no models loaded, serving not ready: %s; %s",
            holder.status().last_error,
            f"retrying every {settings.reload_interval_s:g} s"
            if settings.reload_interval_s > 0
            else "not polling the registry (NBA_RELOAD_INTERVAL_S=0)",
        )
    started = time.perf_counter()
    popularity = store.content_popularity()
    log.info("content popularity from the store in %.2f s", time.perf_counter() - started)
    scorer = Scorer(
        holder,
        taxonomy,
        arbitration,
        store.content(),
        popularity=popularity,
        cache_entries=settings.cache_entries,
        feature_ttl_s=settings.feature_ttl_s,
    )
    return Services(
        settings=settings,
        taxonomy=taxonomy,
        arbitration=arbitration,
        store=store,
        served_log=ServedLog(
            store,
            settings.served_log_flush_s,
            journal_dir=settings.served_log_dir
            or default_journal_dir(settings.database_url, settings.database_schema),
        ),
        holder=holder,
        scorer=scorer,
        keys=KeyVerifier(store, settings.key_cache_ttl_s),
        metrics=metrics,
        cold_limiter=anyio.CapacityLimiter(COLD_PATH_THREADS),
        rng=np.random.default_rng(settings.random_seed),
        clock=clock,
        posteriors=PosteriorCache(
            store,
            settings.online_prior_strength,
            settings.online_refresh_s,
            draw_share=settings.online_draw_share,
        )
        if settings.online_learning
        else None,
    )


class BodySizeLimit:
    """Answers 413 when a request body is larger than ``max_bytes``: at once from the
    Content-Length header, or while the body streams in (chunked uploads). The check runs
    when the route reads its body, so the route template is known to the metrics."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> HTTPException:
        got = f"{size:,} bytes" if size is not None else "more"
        return HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=(
                f"request body of {got} exceeds the limit of {self.max_bytes:,} bytes "
                "(NBA_MAX_BODY_BYTES); send smaller batches"
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        limit = self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise self._too_large(declared)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large(None)
            return message

        await self.app(scope, limited_receive, send)


class InflightLimit:
    """Sheds load: a worker works on at most ``max_inflight`` ``/v1`` requests at once, and
    takes none that waited more than ``max_queue_s`` between its head arriving
    (``serving.http_protocol`` stamps it) and reaching the app while at least
    ``SHED_MIN_WAITING`` requests wait (0: no wait limit). Those are answered 503 with
    ``Retry-After`` at once, before any work (key check, body, scoring). Without it a
    worker offered more than it can answer queues everything, every request's latency grows
    until clients time out, and the work done for clients that left is wasted. Both limits
    are needed: the count bounds requests that wait inside the app (cold accounts in
    threads, worklists), but a warm request runs on the loop from start to end, so under
    overload the queue forms before the app (tasks created and not yet run), where only a
    request's wait shows it. Health, metrics and the pages are never shed. No lock:
    everything here runs on the worker's loop."""

    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int,
        metrics: Metrics,
        max_queue_s: float = 0.0,
        max_ingest: int | None = None,
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.max_queue_s = max_queue_s
        self.max_ingest = max_ingest or max_inflight
        self.metrics = metrics
        self.inflight = 0
        self.ingesting = 0

    def overloaded(self, scope: Scope, ingest: bool) -> str | None:
        """Why ``scope`` is shed, or None when the worker takes it."""
        if self.inflight >= self.max_inflight:
            return f"NBA_MAX_INFLIGHT {self.max_inflight} requests in progress"
        if ingest and self.ingesting >= self.max_ingest:
            return f"NBA_MAX_INGEST_INFLIGHT {self.max_ingest} event batches in progress"
        if self.max_queue_s <= 0:
            return None
        stamped = (scope.get("extensions") or {}).get(EXTENSION)
        if stamped is None:  # not served by nba serve's protocol (e.g. a test client)
            return None
        waited = asyncio.get_running_loop().time() - stamped[RECEIVED_AT]
        waiting = len(stamped[REQUESTS]) - self.inflight
        if waited > self.max_queue_s and waiting >= SHED_MIN_WAITING:
            return (
                f"{waiting} requests waiting, this one {waited * 1000:.0f} ms "
                f"(NBA_MAX_QUEUE_MS {self.max_queue_s * 1000:.0f})"
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        # An event batch holds up to NBA_MAX_EVENTS_PER_REQUEST records in memory while it
        # is parsed and stored: their own, smaller limit bounds a worker's memory.
        ingest = scope.get("method") == "POST" and scope.get("path") == "/v1/events"
        reason = self.overloaded(scope, ingest)
        if reason is not None:
            self.metrics.shed.inc()
            overloaded = OverloadedError(
                f"this worker is at its limit ({reason}); try again in {SHED_RETRY_AFTER_S} s"
            )
            await error_response(overloaded)(scope, receive, send)
            return
        self.inflight += 1
        self.ingesting += ingest
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            self.ingesting -= ingest


class RequestMetrics:
    """Counts requests and observes their latency per method and route template (e.g.
    ``/v1/accounts/{account_id}/recommendations``, so ids do not explode the label set;
    requests no route matched are labelled ``unmatched``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_with_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(code)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
