"""``nba train``: train models, log one MLflow run each and register them."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.cli import (
    AttributesOption,
    EngineOption,
    MappingOption,
    PartitionsOption,
    SchedulerOption,
    StoreOption,
    StoreSchemaOption,
    TaxonomyOption,
    load_taxonomy_option,
    parse_engine,
)
from training.cli.options import (
    ForceOption,
    OutcomesOption,
    RewardEventOption,
    RewardOption,
    RewardWindowOption,
    TrackingOption,
    prepare_source,
    reward_of,
    store_source,
)

if TYPE_CHECKING:
    from training.result import ModelResult
    from training.train import Prepared


def train(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="all, outcomes (every declared outcome), phase, next-content, or one "
            "outcome: NAME or outcome:NAME (churn by default)."
        ),
    ] = "all",
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data directory (CSV or Parquet tables); default ./data."),
    ] = None,
    store: StoreOption = None,
    store_schema: StoreSchemaOption = None,
    as_of_dates: Annotated[
        int,
        typer.Option(
            "--as-of-dates",
            min=4,
            help="Dates of the calendar grids (monthly for phase and next content; an "
            "outcome's grid takes more when its split needs them).",
        ),
    ] = 12,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="LightGBM parameter override MODEL.KEY=VALUE (or KEY=VALUE for all); repeatable.",
        ),
    ] = None,
    engine: EngineOption = "pandas",
    scheduler: SchedulerOption = None,
    partitions: PartitionsOption = None,
    tracking_uri: TrackingOption = None,
    parent_run_id: Annotated[
        str | None, typer.Option("--parent-run-id", envvar="MLFLOW_RUN_ID", hidden=True)
    ] = None,
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    force: ForceOption = False,
    reward: RewardOption = "response",
    reward_event: RewardEventOption = None,
    reward_window_days: RewardWindowOption = 7,
    outcomes: OutcomesOption = None,
    work: Annotated[
        Path | None,
        typer.Option(
            "--work",
            help="--engine dask: where the workers write the training sets' parts (a path "
            "every worker shares); default a temporary directory beside the data, removed "
            "after.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (per model: version, champion, gate, comparison with "
            "its peer; seconds, peak memory) instead of the reports.",
        ),
    ] = False,
) -> None:
    """Train models, log one MLflow run each and register them. A model's first version
    becomes champion only if it beats its strongest baseline on the validation split (its
    gate), unless --force. With `all`, a model the data cannot support is skipped with the
    reason and the others train."""
    from models.outcomes import load_outcomes
    from training.model_steps import TrainingError, parse_models, parse_params
    from training.tracking import configure_tracking, log_result
    from training.train import train_models

    started = time.perf_counter()
    tax = load_taxonomy_option(taxonomy)
    declared = load_outcomes(outcomes, taxonomy=tax)
    models = parse_models(model, declared)
    params = parse_params(param or [], models)
    chosen = parse_engine(engine)
    rewarded = reward_of(reward, reward_event, reward_window_days)
    source = store_source(ctx, data, store, store_schema, mapping)
    uri = configure_tracking(tracking_uri)
    summaries: list[dict[str, object]] = []

    def logged(result: ModelResult) -> None:
        info = log_result(result, parent_run_id=parent_run_id, force=force)
        if as_json:
            summaries.append(_summary(result, info.registered_name, info.version, info.champion))
            return
        value = result.metrics.get(result.primary_metric, float("nan"))
        typer.echo(info.format(result.primary_metric, value))
        typer.echo(result.report_markdown)

    on_skip = _echo_skip if model == "all" else None

    def run(address: str | None, client: Any | None) -> Prepared:
        prepared = prepare_source(
            data,
            tax,
            mapping,
            as_of_dates,
            chosen,
            address,
            attributes=attributes,
            models=models,
            reward=rewarded,
            store=source,
        )
        train_models(
            models,
            prepared,
            tax,
            params=params,
            on_result=logged,
            client=client,
            on_skip=on_skip,
            outcomes=declared,
        )
        return prepared

    data_dir = data if data is not None else Path("data")
    in_ranges = chosen == "dask" and source is None and mapping is None and attributes is None
    if in_ranges:
        from features.pipeline.dask_files import reads_in_ranges

        in_ranges = reads_in_ranges(data_dir)
    if in_ranges:
        from training.dask_sets import DaskSetsError
        from training.dask_train import train_from_parts

        try:
            with _work_dir(work, data_dir) as workdir:
                parts = train_from_parts(
                    data_dir,
                    tax,
                    models,
                    declared,
                    workdir=workdir,
                    scheduler=scheduler,
                    npartitions=partitions,
                    n_dates=as_of_dates,
                    params=params,
                    on_result=logged,
                    on_skip=on_skip,
                )
            if parts.skipped and not parts.results:
                raise TrainingError(
                    "no model can be trained on these data: "
                    + "; ".join(f"{m}: {why}" for m, why in parts.skipped.items())
                )
            _report(
                as_json,
                summaries,
                uri,
                {k: round(v, 1) for k, v in parts.seconds.items()},
                started,
                worker_peak_mb=parts.worker_peak_mb,
                partitions=parts.partitions,
            )
            return
        except DaskSetsError as exc:
            # Anchored outcomes and next-action sets are built in one process for now.
            typer.echo(f"training sets on the workers: {exc.details}; building them in memory")
    if chosen == "dask":
        from features.pipeline.dask_engine import dask_client

        # One cluster for both: the Dask feature engine, then lightgbm.dask training.
        with dask_client(scheduler) as client:
            prepared = run(client.scheduler.address, client)  # type: ignore[attr-defined]
    else:
        prepared = run(scheduler, None)
    _report(as_json, summaries, uri, {k: round(v, 1) for k, v in prepared.seconds.items()}, started)


@contextmanager
def _work_dir(work: Path | None, data_dir: Path) -> Iterator[Path]:
    """``work``, or a temporary directory beside the data that is removed afterwards."""
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    with tempfile.TemporaryDirectory(dir=data_dir.resolve().parent, prefix="nba-work-") as tmp:
        yield Path(tmp)


def _report(
    as_json: bool,
    summaries: list[dict[str, object]],
    uri: str,
    seconds: dict[str, float],
    started: float,
    *,
    worker_peak_mb: dict[str, float] | None = None,
    partitions: int | None = None,
) -> None:
    """Prints the run's closing line, or with ``as_json`` its one JSON object (with the
    Dask workers' peaks and account ranges when the sets were built on them)."""
    extra: dict[str, object] = (
        {}
        if worker_peak_mb is None
        else {"worker_peak_mb": worker_peak_mb, "partitions": partitions}
    )
    if as_json:
        from features.cli import peak_memory_mb

        seconds["total_s"] = round(time.perf_counter() - started, 1)
        typer.echo(
            json.dumps(
                {
                    "models": summaries,
                    "tracking_uri": uri,
                    "seconds": seconds,
                    "peak_mb": peak_memory_mb(),
                    **extra,
                }
            )
        )
        return
    typer.echo(f"tracking store {uri}; seconds " + json.dumps(seconds))
    if worker_peak_mb:
        typer.echo(
            f"{partitions} account ranges; worker peak memory (MB) " + json.dumps(worker_peak_mb)
        )


def _echo_skip(name: str, why: str) -> None:
    """Says a model was skipped and why (``nba train all``)."""
    typer.echo(f"skipped {name}: {why}")


def _summary(
    result: ModelResult, registered: str, version: str, champion: bool
) -> dict[str, object]:
    """One model's part of ``nba train --json``: the comparison with its peer last (flat, so
    a shell script can cut it out)."""
    primary = result.metrics.get(result.primary_metric, float("nan"))
    gate = result.gate
    out: dict[str, object] = {
        "model": result.name,
        "registered": registered,
        "version": version,
        "champion": champion,
        "primary_metric": result.primary_metric,
        "primary_value": round(primary, 6) if primary == primary else None,
        "gate": None if gate is None else gate.summary(),
    }
    comparison = result.extra_artifacts.get("comparison.json")
    if comparison is not None:
        out["comparison"] = json.loads(comparison)
    return out
