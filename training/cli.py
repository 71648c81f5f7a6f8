"""The training layer's commands: ``nba train``, ``nba promote``, ``nba report`` and
``nba demo``.

Commands raise :class:`~features.errors.NbaError` for a user's mistake; the root ``nba`` app
turns it into a message and an exit code once. Heavy libraries are imported inside each
command, which keeps ``nba --help`` fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from features.cli import (
    AttributesOption,
    EngineOption,
    MappingOption,
    SchedulerOption,
    TaxonomyOption,
    load_taxonomy_option,
    parse_engine,
    peak_memory_mb,
)
from features.errors import InvalidInputError

if TYPE_CHECKING:
    from features.cli import Engine
    from features.taxonomy import Taxonomy
    from training.result import ModelName, ModelResult
    from training.train import Prepared

app = typer.Typer(add_completion=False)

OutcomesOption = Annotated[
    Path | None,
    typer.Option(
        "--outcomes",
        help="Outcomes file (YAML) declaring the binary outcome models; default the shipped "
        "one (churn).",
        exists=True,
        dir_okay=False,
    ),
]
TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking store; default a local SQLite file, sqlite:///mlflow.db.",
    ),
]


@app.command()
def train(
    model: Annotated[
        str,
        typer.Argument(
            help="all, outcomes (every declared outcome), phase, next-content, or one "
            "outcome: NAME or outcome:NAME (churn by default)."
        ),
    ] = "all",
    data: Annotated[
        Path, typer.Option("--data", help="Data directory (CSV or Parquet tables).")
    ] = Path("data"),
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
    tracking_uri: TrackingOption = None,
    parent_run_id: Annotated[
        str | None, typer.Option("--parent-run-id", envvar="MLFLOW_RUN_ID", hidden=True)
    ] = None,
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    outcomes: OutcomesOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print only one JSON line: the models logged, seconds per step, peak memory.",
        ),
    ] = False,
) -> None:
    """Train models, log one MLflow run each and register them (first version = champion)."""
    from models.outcomes import load_outcomes
    from training.tracking import configure_tracking, log_result
    from training.train import parse_models, parse_params, train_models

    tax = load_taxonomy_option(taxonomy)
    declared = load_outcomes(outcomes, taxonomy=tax)
    models = parse_models(model, declared)
    params = parse_params(param or [], models)
    chosen = parse_engine(engine)
    uri = configure_tracking(tracking_uri)

    trained: list[dict[str, object]] = []

    def logged(result: ModelResult) -> None:
        info = log_result(result, parent_run_id=parent_run_id)
        primary = result.metrics.get(result.primary_metric, float("nan"))
        gate = result.gate
        trained.append(
            {
                "model": f"{info.registered_name} v{info.version}",
                "champion": info.champion,
                result.primary_metric: round(primary, 4),
                "gate_passed": None if gate is None else gate.passed,
            }
        )
        if as_json:
            return
        typer.echo(
            f"{info.registered_name} v{info.version}"
            f"{' (champion)' if info.champion else ''}: {result.primary_metric}="
            f"{primary:.4f}  run {info.run_id}"
        )
        if gate is not None:
            typer.echo(
                f"gate (validation {gate.metric}): model {gate.model:.4f} vs {gate.baseline} "
                f"{gate.baseline_value:.4f}: {'passed' if gate.passed else 'NOT passed'}"
            )
        typer.echo(result.report_markdown)

    if chosen == "dask":
        from features.pipeline.dask_engine import dask_client

        # One cluster for both: the Dask feature engine, then lightgbm.dask training.
        with dask_client(scheduler) as client:
            address = client.scheduler.address  # type: ignore[attr-defined]
            prepared = _prepare(
                data, tax, mapping, as_of_dates, chosen, address, attributes=attributes
            )
            train_models(
                models,
                prepared,
                tax,
                params=params,
                on_result=logged,
                client=client,
                outcomes=declared,
            )
    else:
        prepared = _prepare(
            data, tax, mapping, as_of_dates, chosen, scheduler, attributes=attributes
        )
        train_models(models, prepared, tax, params=params, on_result=logged, outcomes=declared)
    seconds = {k: round(v, 1) for k, v in prepared.seconds.items()}
    if as_json:
        summary = {"models": trained, "seconds": seconds, "peak_memory_mb": peak_memory_mb()}
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"tracking store {uri}; seconds {json.dumps(seconds)}; "
        f"peak memory {peak_memory_mb():.0f} MB"
    )


def _prepare(
    data: Path,
    taxonomy: Taxonomy,
    mapping: Path | None,
    as_of_dates: int,
    engine: Engine,
    scheduler: str | None,
    *,
    attributes: Path | None = None,
) -> Prepared:
    from features.cli import load_declarations
    from training.train import prepare

    column_mapping, declared = load_declarations(mapping, attributes)
    return prepare(
        data,
        taxonomy,
        mapping=column_mapping,
        n_dates=as_of_dates,
        engine=engine,
        scheduler=scheduler,
        attributes=declared,
    )


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="phase, churn or next-content.")],
    data: Annotated[
        Path, typer.Option("--data", help="Data directory to build the test split from.")
    ] = Path("data"),
    version: Annotated[
        str | None, typer.Option("--version", help="Challenger version (default: newest).")
    ] = None,
    as_of_dates: Annotated[int, typer.Option("--as-of-dates", min=4)] = 12,
    tracking_uri: TrackingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Score the newest version and the champion on the same test data; move `champion` to
    the newcomer only if it is better on the model's primary metric. Custom attributes get
    their levels from DIR as in training (the same data gives the same levels)."""
    from training.registry import promote as run_promotion
    from training.result import MODEL_NAMES
    from training.tracking import configure_tracking
    from training.train import model_steps, scorer_on_test_split

    tax = load_taxonomy_option(taxonomy)
    if model not in MODEL_NAMES:
        raise InvalidInputError(f"model {model!r}: promote one of {', '.join(MODEL_NAMES)}")
    name = cast("ModelName", model)
    configure_tracking(tracking_uri)
    prepared = _prepare(data, tax, None, as_of_dates, "pandas", None, attributes=attributes)
    score = scorer_on_test_split(name, prepared, tax)
    metric = model_steps(name).primary_metric.removeprefix("model.")
    outcome = run_promotion(name, score, metric=metric, version=version)
    typer.echo(outcome.format())


@app.command()
def report(
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the report to this Markdown file.")
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            help="Report this binary outcome's newest model (test split vs its peer, 95 % "
            "intervals) instead of the champions.",
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="With --outcome: this version.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --outcome: one JSON object.")
    ] = False,
    tracking_uri: TrackingOption = None,
) -> None:
    """Print the quality table of the current champions (model vs baselines vs ceiling),
    or with --outcome one outcome model's figures beside its peer."""
    from training.report import champions_report, outcome_report
    from training.tracking import configure_tracking

    if outcome is None and (as_json or version is not None):
        raise InvalidInputError("--json and --version need --outcome NAME")
    configure_tracking(tracking_uri)
    if outcome is not None:
        figures = outcome_report(outcome, version=version)
        text = json.dumps(figures) if as_json else _outcome_text(figures)
    else:
        text = champions_report()
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def _outcome_text(figures: dict[str, object]) -> str:
    """An outcome report as a Markdown table: metric | model [CI] | peer [CI] | verdict."""
    lines = [
        f"### {figures['model']}: model vs {figures['peer']} (test split, 95 % intervals)",
        "",
        "| metric | model | peer | model - peer | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for name, m in cast("dict[str, dict[str, object]]", figures["metrics"]).items():
        lines.append(
            f"| {name} | {m['model']} {m['model_ci']} | {m['peer']} {m['peer_ci']} | "
            f"{m['difference_ci']} | {m['verdict']} |"
        )
    return "\n".join([*lines, "", f"split: {json.dumps(figures['split'])}"])


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Working directory for the demo.", file_okay=False)
    ] = Path("demo"),
    accounts: Annotated[int, typer.Option("--accounts", min=1)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Run the main job end to end on a small simulated data set: simulate, validate, build
    features, train and register the three models (MLflow store in OUT/mlflow.db)."""
    from features.pipeline import build_features
    from features.simulate import simulate as run_simulation
    from features.simulate import write_simulation
    from training.report import champions_report
    from training.tracking import configure_tracking, log_result
    from training.train import prepare, train_models

    tax = load_taxonomy_option(None)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    sim = run_simulation(accounts, seed, taxonomy=tax)
    data_dir = write_simulation(sim, out / "data")
    steps["simulate_s"] = time.perf_counter() - started

    started = time.perf_counter()
    prepared = prepare(data_dir, tax, n_dates=12)
    prepared.features  # noqa: B018 - computed now, so the step's time includes them
    steps["load_and_features_s"] = time.perf_counter() - started
    latest = build_features(prepared.data, [prepared.as_of[-1]], tax)
    latest.to_parquet(out / "features.parquet", index=False)

    started = time.perf_counter()
    uri = configure_tracking(f"sqlite:///{(out / 'mlflow.db').resolve()}")
    versions = {}
    for result in train_models(["phase", "churn", "next-content"], prepared, tax):
        logged = log_result(result, artifact_root=out / "mlruns")
        versions[logged.registered_name] = {
            "version": logged.version,
            result.primary_metric: round(result.metrics[result.primary_metric], 4),
        }
    steps["train_and_log_s"] = time.perf_counter() - started
    report_file = out / "quality.md"
    report_file.write_text(champions_report())
    summary = {
        "data_dir": str(data_dir),
        "tables": {name: len(f) for name, f in sim.data.tables().items()},
        "features_file": str(out / "features.parquet"),
        "features": latest.shape[1] - 2,
        "as_of_grid": [str(d.date()) for d in (prepared.as_of[0], prepared.as_of[-1])],
        "tracking_uri": uri,
        "models": versions,
        "quality_report": str(report_file),
        "seconds": {k: round(v, 2) for k, v in steps.items()},
    }
    typer.echo(json.dumps(summary, indent=2))
