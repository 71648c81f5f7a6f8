"""The ``nba`` command: a thin shell that reads settings once and wires the layers.

It lives in ``training`` because that is the top of the dependency chain
(features <- models <- training); serving commands import ``serving`` lazily, so serving
itself never imports training. Heavy libraries are imported inside each command, which keeps
``nba --help`` fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

if TYPE_CHECKING:
    import pandas as pd

    from features.schema import JourneyData
    from features.taxonomy import Taxonomy
    from training.result import ModelName, ModelResult
    from training.train import Prepared

app = typer.Typer(
    name="nba",
    help="journey-nba: next-best-action for B2B customer journeys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy",
        envvar="NBA_TAXONOMY",
        help="Taxonomy YAML replacing the shipped default (phases, channels, roles, content).",
        dir_okay=False,
    ),
]
MappingOption = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="Mapping YAML that renames a CRM export's files, columns and values onto ours.",
        dir_okay=False,
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _taxonomy(path: Path | None) -> Taxonomy:
    from features.taxonomy import TaxonomyError, load_taxonomy

    try:
        return load_taxonomy(path)
    except TaxonomyError as exc:
        raise _fail(str(exc)) from exc


def _timestamp(value: str, option: str) -> pd.Timestamp:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise _fail(f"{option} {value!r} is not a date (expected e.g. 2025-06-01)") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Data directory to write.", file_okay=False)],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Number of accounts.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same data.")] = 7,
    start: Annotated[
        str, typer.Option("--start", help="First simulated day (UTC).")
    ] = "2024-01-01",
    months: Annotated[int, typer.Option("--months", min=1, help="Months to simulate.")] = 24,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Simulate B2B journeys: writes the six tables as Parquet plus OUT/truth/."""
    from features.simulate import simulate as run_simulation
    from features.simulate import write_simulation

    started = time.perf_counter()
    sim = run_simulation(
        accounts,
        seed,
        start=_timestamp(start, "--start"),
        months=months,
        taxonomy=_taxonomy(taxonomy),
    )
    write_simulation(sim, out)
    counts = {name: len(frame) for name, frame in sim.data.tables().items()}
    typer.echo(
        f"wrote {out}: "
        + ", ".join(f"{n:,} {name}" for name, n in counts.items())
        + f" in {time.perf_counter() - started:.1f} s"
    )


@app.command()
def validate(
    data_dir: Annotated[
        Path, typer.Argument(help="Directory with <table>.csv or <table>.parquet files.")
    ],
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Check a data directory against the data contract; exit 0 if good, 1 with a report."""
    from features.mapping import MappingError, load_mapping
    from features.validate import validate_data_dir

    try:
        column_mapping = load_mapping(mapping) if mapping is not None else None
    except MappingError as exc:
        raise _fail(str(exc)) from exc
    report = validate_data_dir(data_dir, _taxonomy(taxonomy), mapping=column_mapping)
    typer.echo(report.format())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def features(
    data: Annotated[
        Path | None, typer.Option("--data", help="Data directory (CSV or Parquet tables).")
    ] = None,
    as_of: Annotated[
        list[str] | None,
        typer.Option("--as-of", help="As-of date; repeat for several. Uses events before it."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Parquet file to write.", dir_okay=False)
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="pandas (one machine) or dask (a cluster).")
    ] = "pandas",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            envvar="NBA_DASK_SCHEDULER",
            help="Dask scheduler address; default starts a 2-worker LocalCluster.",
        ),
    ] = None,
    list_features: Annotated[
        bool, typer.Option("--list", help="Print every feature with its definition and exit.")
    ] = False,
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Build point-in-time account features: one row per (account, as-of date)."""
    from features.pipeline import build_features, feature_definitions

    tax = _taxonomy(taxonomy)
    if list_features:
        definitions = feature_definitions(tax)
        width = max(len(name) for name in definitions)
        for name, text in definitions.items():
            typer.echo(f"{name:<{width}}  {text}")
        return
    missing = [flag for flag, v in (("--data", data), ("--as-of", as_of), ("--out", out)) if not v]
    if missing:
        raise _fail(f"missing {', '.join(missing)} (or pass --list to list the features)")
    if engine not in ("pandas", "dask"):
        raise _fail(f"--engine {engine!r} is not one of pandas, dask")
    assert data is not None and as_of is not None and out is not None
    dates = [_timestamp(v, "--as-of") for v in as_of]
    loaded = _read_data(data, tax, mapping)
    started = time.perf_counter()
    frame = build_features(
        loaded,
        dates,
        tax,
        engine="dask" if engine == "dask" else "pandas",
        scheduler=scheduler,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    typer.echo(
        f"wrote {out}: {len(frame):,} rows x {frame.shape[1] - 2} features "
        f"in {time.perf_counter() - started:.1f} s ({engine})"
    )


def _read_data(data_dir: Path, taxonomy: Taxonomy, mapping: Path | None) -> JourneyData:
    from features.load import read_data_dir
    from features.mapping import MappingError, load_mapping
    from features.validate import DataValidationError

    try:
        column_mapping = load_mapping(mapping) if mapping is not None else None
        return read_data_dir(data_dir, taxonomy, mapping=column_mapping)
    except MappingError as exc:
        raise _fail(str(exc)) from exc
    except DataValidationError as exc:
        typer.echo(exc.report.format(), err=True)
        raise typer.Exit(1) from exc


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
    model: Annotated[str, typer.Argument(help="phase, churn, next-content or all.")] = "all",
    data: Annotated[
        Path, typer.Option("--data", help="Data directory (CSV or Parquet tables).")
    ] = Path("data"),
    as_of_dates: Annotated[
        int, typer.Option("--as-of-dates", min=4, help="Monthly as-of dates in the training set.")
    ] = 12,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="LightGBM parameter override MODEL.KEY=VALUE (or KEY=VALUE for all); repeatable.",
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="Feature engine: pandas or dask.")
    ] = "pandas",
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", envvar="NBA_DASK_SCHEDULER", help="Dask scheduler address."),
    ] = None,
    tracking_uri: TrackingOption = None,
    parent_run_id: Annotated[
        str | None, typer.Option("--parent-run-id", envvar="MLFLOW_RUN_ID", hidden=True)
    ] = None,
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Train models, log one MLflow run each and register them (first version = champion)."""
    from training.tracking import configure_tracking, log_result
    from training.train import TrainingError, parse_models, parse_params, train_models

    tax = _taxonomy(taxonomy)
    try:
        models = parse_models(model)
        params = parse_params(param or [], models)
    except TrainingError as exc:
        raise _fail(str(exc)) from exc
    if engine not in ("pandas", "dask"):
        raise _fail(f"--engine {engine!r} is not one of pandas, dask")
    uri = configure_tracking(tracking_uri)

    def logged(result: ModelResult) -> None:
        info = log_result(result, parent_run_id=parent_run_id)
        typer.echo(
            f"{info.registered_name} v{info.version}"
            f"{' (champion)' if info.champion else ''}: {result.primary_metric}="
            f"{result.metrics.get(result.primary_metric, float('nan')):.4f}  run {info.run_id}"
        )
        typer.echo(result.report_markdown)

    if engine == "dask":
        from features.pipeline_dask import dask_client

        # One cluster for both: the Dask feature engine, then lightgbm.dask training.
        with dask_client(scheduler) as client:
            address = client.scheduler.address  # type: ignore[attr-defined]
            prepared = _prepare(data, tax, mapping, as_of_dates, engine, address)
            train_models(models, prepared, tax, params=params, on_result=logged, client=client)
    else:
        prepared = _prepare(data, tax, mapping, as_of_dates, engine, scheduler)
        train_models(models, prepared, tax, params=params, on_result=logged)
    typer.echo(
        f"tracking store {uri}; seconds "
        + json.dumps({k: round(v, 1) for k, v in prepared.seconds.items()})
    )


def _prepare(
    data: Path,
    taxonomy: Taxonomy,
    mapping: Path | None,
    as_of_dates: int,
    engine: str,
    scheduler: str | None,
) -> Prepared:
    from features.mapping import MappingError, load_mapping
    from features.validate import DataValidationError
    from training.datasets import TrainingSetError
    from training.train import prepare

    try:
        column_mapping = load_mapping(mapping) if mapping is not None else None
        return prepare(
            data,
            taxonomy,
            mapping=column_mapping,
            n_dates=as_of_dates,
            engine="dask" if engine == "dask" else "pandas",
            scheduler=scheduler,
        )
    except (MappingError, TrainingSetError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    except DataValidationError as exc:
        typer.echo(exc.report.format(), err=True)
        raise typer.Exit(1) from exc


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
    taxonomy: TaxonomyOption = None,
) -> None:
    """Score the newest version and the champion on the same test data; move `champion` to
    the newcomer only if it is better on the model's primary metric."""
    from training.registry import RegistryError
    from training.registry import promote as run_promotion
    from training.result import MODEL_NAMES
    from training.tracking import configure_tracking
    from training.train import model_steps, scorer_on_test_split

    tax = _taxonomy(taxonomy)
    if model not in MODEL_NAMES:
        raise _fail(f"model {model!r}: promote one of {', '.join(MODEL_NAMES)}")
    name = cast("ModelName", model)
    configure_tracking(tracking_uri)
    prepared = _prepare(data, tax, None, as_of_dates, "pandas", None)
    score = scorer_on_test_split(name, prepared, tax)
    try:
        metric = model_steps(name).primary_metric.removeprefix("model.")
        outcome = run_promotion(name, score, metric=metric, version=version)
    except RegistryError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(outcome.format())


@app.command()
def report(
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the report to this Markdown file.")
    ] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Print the quality table of the current champions (model vs baselines vs ceiling)."""
    from training.report import champions_report
    from training.tracking import configure_tracking

    configure_tracking(tracking_uri)
    text = champions_report()
    typer.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


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

    tax = _taxonomy(None)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    sim = run_simulation(accounts, seed, taxonomy=tax)
    data_dir = write_simulation(sim, out / "data")
    steps["simulate_s"] = time.perf_counter() - started

    started = time.perf_counter()
    prepared = prepare(data_dir, tax, n_dates=12)
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


# -- serving ---------------------------------------------------------------------------------
# These commands import ``serving`` inside their bodies: serving never imports training, and
# ``nba --help`` stays fast.

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _serving_settings() -> object:
    import os

    from serving.settings import Settings, SettingsError

    try:
        return Settings.from_env(os.environ)
    except SettingsError as exc:
        raise _fail(str(exc)) from exc


def _serving_store(taxonomy: Path | None = None) -> object:
    """The migrated store of NBA_DATABASE_URL (and NBA_DATABASE_SCHEMA)."""
    from serving.settings import Settings
    from serving.store import Store, StoreError

    settings = cast(Settings, _serving_settings())
    tax = _taxonomy(taxonomy or settings.taxonomy)
    try:
        store = Store(settings.database_url, tax, schema=settings.database_schema)
        store.migrate()
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    return store


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (a line each; /metrics counts them either way).",
        ),
    ] = True,
) -> None:
    """Run the recommendation API under uvicorn. Settings come from NBA_* environment
    variables (see README, Serving); each worker builds its app and loads its models after
    the fork."""
    import uvicorn

    _serving_settings()  # fail fast on a bad setting, before any worker starts
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A name for the key, e.g. crm-widget.")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated: events:write, recommendations:read, feedback:write, admin.",
        ),
    ],
) -> None:
    """Create an API key and print it (the only time it is shown; only a hash is stored)."""
    from serving.store import ApiKeyError, Store

    store = cast(Store, _serving_store())
    try:
        key = store.create_api_key(name, [s.strip() for s in scopes.split(",") if s.strip()])
    except ApiKeyError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.dispose()
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys (names, scopes, created, revoked; never the secrets)."""
    from serving.store import Store

    store = cast(Store, _serving_store())
    for key in store.api_keys():
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(
            f"{key.name}\t{','.join(sorted(key.scopes))}\t"
            f"created {key.created_at:%Y-%m-%d %H:%M}\t{revoked}"
        )
    store.dispose()


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Option("--name", help="The active key to revoke.")],
) -> None:
    """Revoke the active key NAME (running services stop accepting it within
    NBA_KEY_CACHE_TTL_S seconds)."""
    from serving.store import ApiKeyError, Store

    store = cast(Store, _serving_store())
    try:
        store.revoke_api_key(name)
    except ApiKeyError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.dispose()
    typer.echo(f"revoked {name}")


@app.command()
def load(
    data_dir: Annotated[
        Path, typer.Argument(help="Directory with <table>.csv or <table>.parquet files.")
    ],
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Validate a data directory and bulk-load it into the service's store
    (NBA_DATABASE_URL); loading twice stores nothing twice."""
    from rich.progress import Progress

    from serving.store import Store

    store = cast(Store, _serving_store(taxonomy))
    data = _read_data(data_dir, store.taxonomy, mapping)
    with Progress(transient=True) as progress:
        tasks: dict[str, object] = {}

        def report(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(f"loading {table}", total=max(total, 1))
            progress.update(tasks[table], completed=done)  # type: ignore[arg-type]

        result = store.load_data(data, progress=report)
    store.dispose()
    typer.echo(
        f"loaded {data_dir} into {store.url.split('@')[-1]} in {result.seconds:.1f} s: "
        + ", ".join(
            f"{result.stored_rows[t]:,}/{result.input_rows[t]:,} {t}" for t in result.input_rows
        )
    )


@app.command()
def score(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.", dir_okay=False)],
    k: Annotated[int, typer.Option("--k", min=1, help="Actions per account.")] = 3,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this time (default: now, UTC).")
    ] = None,
    chunk_accounts: Annotated[
        int, typer.Option("--chunk-accounts", min=1, help="Accounts read and scored at once.")
    ] = 5_000,
) -> None:
    """Score every account in the store (phase, churn risk and band, top-k actions) for CRM
    sync, with the champion models of MLFLOW_TRACKING_URI; writes Parquet."""
    import pandas as pd
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from models.arbitration import load_arbitration_config
    from serving.models import ModelHolder
    from serving.scoring import Scorer
    from serving.settings import Settings
    from serving.store import Store

    settings = cast(Settings, _serving_settings())
    store = cast(Store, _serving_store())
    now = _timestamp(as_of, "--as-of") if as_of else pd.Timestamp.now(tz="UTC")
    holder = ModelHolder(settings.tracking_uri, settings.model_alias)
    if not holder.load():
        raise _fail(f"no models to score with: {holder.status().last_error}")
    scorer = Scorer(
        holder,
        store.taxonomy,
        load_arbitration_config(settings.arbitration_config),
        store.content(),
    )
    ids = store.account_ids()
    started = time.perf_counter()
    frames = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("scoring accounts", total=len(ids))
        for lo in range(0, len(ids), chunk_accounts):
            chunk = ids[lo : lo + chunk_accounts]
            frames.append(scorer.score_accounts_batch(store.accounts_data(chunk), now, k=k))
            progress.update(task, advance=len(chunk))
    store.dispose()
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    scores.insert(1, "as_of", now)
    out.parent.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out, index=False)
    typer.echo(
        f"wrote {out}: {len(scores):,} accounts scored as of {now:%Y-%m-%d %H:%M} UTC "
        f"in {time.perf_counter() - started:.1f} s (models {dict(holder.current.versions)})"
    )


def main() -> None:
    """Console entry point."""
    app(prog_name="nba")


if __name__ == "__main__":
    main()
