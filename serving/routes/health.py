"""``GET /health`` (the process is alive), ``GET /ready`` (store and models usable) and
``GET /metrics`` (Prometheus text format). None of them needs an API key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serving.model_set import ANSWER_PARTS, how_to_train
from serving.routes import Services, services
from serving.schemas import ReadyResponse

router = APIRouter(tags=["health"])


class ServiceCollector(Collector):
    """Model versions, reloads, reload failures, the score cache and the served log, read at
    scrape time from the app's model holder, scorer and served log."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        state = self.svc.holder.status()
        versions = GaugeMetricFamily(
            "nba_model_version",
            "Registry version of each model being served (absent before the first load).",
            labels=["model", "alias"],
        )
        for name, version in sorted(state.versions.items()):
            try:
                versions.add_metric([name, state.alias], float(version))
            except ValueError:
                continue
        yield versions
        yield GaugeMetricFamily(
            "nba_models_ready", "1 when a model set is loaded.", value=float(state.ready)
        )
        yield CounterMetricFamily(
            "nba_model_reloads",
            "Model sets swapped in (the first load included).",
            value=state.reloads,
        )
        yield CounterMetricFamily(
            "nba_model_reload_failures",
            "Model loads that failed (the previous set kept serving).",
            value=state.failures,
        )
        yield GaugeMetricFamily(
            "nba_model_last_reload_failed",
            "1 when the latest load attempt failed.",
            value=float(state.last_error is not None),
        )
        yield CounterMetricFamily(
            "nba_model_sets_rejected",
            "Model sets that loaded but failed the smoke test on their input examples "
            "(counted in the reload failures too; the previous set kept serving).",
            value=state.rejections,
        )
        rejected = GaugeMetricFamily(
            "nba_model_set_rejected",
            "1 for the model, version and failed check of the latest rejected set (absent "
            "once a set is swapped in or the alias points at the serving set again).",
            labels=["model", "version", "check"],
        )
        if state.rejected is not None:
            r = state.rejected
            rejected.add_metric([r.model, r.version, r.check], 1.0)
        yield rejected
        scorer = self.svc.scorer
        yield CounterMetricFamily(
            "nba_score_cache_hits",
            "Recommendation requests served from the account cache.",
            value=scorer.hits,
        )
        yield CounterMetricFamily(
            "nba_score_cache_misses",
            "Recommendation requests that computed features.",
            value=scorer.misses,
        )
        served_log = self.svc.served_log
        yield GaugeMetricFamily(
            "nba_served_log_pending",
            "Served actions queued for the store's recommendation log, not written yet.",
            value=served_log.pending,
        )
        yield CounterMetricFamily(
            "nba_served_log_written",
            "Served actions written to the store's recommendation log.",
            value=served_log.written,
        )
        yield CounterMetricFamily(
            "nba_served_log_write_failures",
            "Writes of the recommendation log that failed (their rows were kept and retried).",
            value=served_log.write_failures,
        )


@router.get("/health", summary="The process is alive")
def health() -> dict[str, str]:
    """Always 200 while the process answers."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Store and models are usable",
    responses={503: {"model": ReadyResponse, "description": "Something is missing."}},
)
def ready(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    """200 when the store answers (and is migrated) and a model set (at least one model) is
    loaded, ``parts_missing`` naming the answer parts no model serves and how to train
    them; 503 with what is missing otherwise and how to fix it, including the last model
    reload error. A set that failed to
    load or was rejected while another serves shows in ``last_reload_error`` (still 200)."""
    store_ok = svc.store.ping()
    state = svc.holder.status()
    missing: list[str] = []
    if not store_ok:
        missing.append(f"store: {svc.store.url.split('@')[-1]} does not answer or is not migrated")
    if not state.ready:
        retry = (
            f"; retrying every {state.retry_interval_s:g} s"
            if state.retry_interval_s
            else "; not polling the registry (NBA_RELOAD_INTERVAL_S=0): restart to retry"
        )
        missing.append(
            f"models: no model set loaded from alias {state.alias!r}"
            + (f" ({state.last_error})" if state.last_error else "")
            + retry
        )
    model_of = {part: name for name, part in ANSWER_PARTS.items()}
    body = ReadyResponse(
        status="ready" if not missing else "not ready",
        store=store_ok,
        models=state.ready,
        model_versions=dict(state.versions),
        missing=missing,
        last_reload_error=state.last_error,
        parts_missing={
            part: f"{why}: {how_to_train(svc.holder.tracking_uri, model_of.get(part, 'all'))}"
            for part, why in state.parts_missing.items()
        },
        tracking_uri=svc.holder.tracking_uri,
    )
    code = status.HTTP_200_OK if not missing else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(svc: Annotated[Services, Depends(services)]) -> Response:
    """Request counts and latency histograms per route template, model versions, reloads
    and reload failures, ingested events, served recommendations (this worker's)."""
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
