"""The training layer's commands: ``nba train``, ``nba promote``, ``nba report`` and
``nba demo``.

Commands raise :class:`~features.errors.NbaError` for a user's mistake; the root ``nba`` app
turns it into a message and an exit code once. Heavy libraries are imported inside each
command, which keeps ``nba --help`` fast.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from features.cli import (
    AttributesOption,
    EngineOption,
    MappingOption,
    SchedulerOption,
    StoreOption,
    StoreReader,
    StoreSchemaOption,
    TaxonomyOption,
    load_taxonomy_option,
    parse_engine,
    store_reader,
)
from features.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from features.cli import Engine
    from features.taxonomy import Taxonomy
    from training.result import ModelResult
    from training.reward import Reward, RewardKind
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

ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Make the version champion even if it loses to its baseline (tagged nba.forced).",
    ),
]


RewardOption = Annotated[
    str,
    typer.Option(
        "--reward",
        help="next-content on data with a no_action control: response (a touchpoint of the "
        "reward event types follows the decision) or value (their summed value).",
    ),
]
RewardEventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--reward-event",
        help="Event type counted as the reward (repeatable; default: the response types for "
        "response, purchase for value).",
    ),
]
RewardWindowOption = Annotated[
    int,
    typer.Option("--reward-window-days", min=1, help="Days after a decision its reward counts."),
]


@app.command()
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
    from training.reward import Reward
    from training.tracking import configure_tracking, log_result
    from training.train import parse_models, parse_params, train_models

    started = time.perf_counter()
    tax = load_taxonomy_option(taxonomy)
    declared = load_outcomes(outcomes, taxonomy=tax)
    models = parse_models(model, declared)
    params = parse_params(param or [], models)
    chosen = parse_engine(engine)
    rewarded = Reward(
        _reward_kind(reward), tuple(reward_event or ()), window_days=reward_window_days
    )
    source = _store_source(ctx, data, store, store_schema, mapping)
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

    def skipped(name: str, why: str) -> None:
        typer.echo(f"skipped {name}: {why}")

    on_skip = skipped if model == "all" else None

    def run(address: str | None, client: Any | None) -> Prepared:
        prepared = _prepare(
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

    if chosen == "dask":
        from features.pipeline.dask_engine import dask_client

        # One cluster for both: the Dask feature engine, then lightgbm.dask training.
        with dask_client(scheduler) as client:
            prepared = run(client.scheduler.address, client)  # type: ignore[attr-defined]
    else:
        prepared = run(scheduler, None)
    seconds = {k: round(v, 1) for k, v in prepared.seconds.items()}
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
                }
            )
        )
        return
    typer.echo(f"tracking store {uri}; seconds " + json.dumps(seconds))


def _reward_kind(text: str) -> RewardKind:
    from training.reward import REWARD_KINDS

    if text not in REWARD_KINDS:
        raise InvalidInputError(f"--reward {text!r}: expected one of {', '.join(REWARD_KINDS)}")
    return cast("RewardKind", text)


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
        "gate": None
        if gate is None
        else {
            "metric": gate.metric,
            "model": round(gate.model, 6),
            "baseline": gate.baseline,
            "baseline_value": round(gate.baseline_value, 6),
            "passed": gate.passed,
        },
    }
    comparison = result.extra_artifacts.get("comparison.json")
    if comparison is not None:
        out["comparison"] = json.loads(comparison)
    return out


@dataclass(frozen=True)
class _StoreSource:
    """``--store``: the service's store at ``url`` and the reader the root app handed down."""

    url: str
    schema: str | None
    read: StoreReader


def _store_source(
    ctx: typer.Context,
    data: Path | None,
    store: str | None,
    schema: str | None,
    mapping: Path | None,
) -> _StoreSource | None:
    """The ``--store`` to read instead of a data directory (None: read ``--data``). Raises
    InvalidInputError for both ``--data`` and ``--store``, or ``--store`` with a mapping (the
    store holds the contract's tables already)."""
    if store is None:
        return None
    if data is not None:
        raise InvalidInputError("--data and --store: give one source of training data")
    if mapping is not None:
        raise InvalidInputError("--mapping maps a data directory; the store is in the contract")
    return _StoreSource(store, schema or None, store_reader(ctx))


def _prepare(
    data: Path | None,
    taxonomy: Taxonomy,
    mapping: Path | None,
    as_of_dates: int,
    engine: Engine,
    scheduler: str | None,
    *,
    attributes: Path | None = None,
    models: Sequence[str] | None = None,
    reward: Reward | None = None,
    store: _StoreSource | None = None,
) -> Prepared:
    """The prepared training data of the data directory ``data`` (default ./data) or, with
    ``store``, of the service's store, read into the same validated tables."""
    from features.cli import load_declarations
    from training.result import MODEL_NAMES
    from training.train import prepare, prepare_data

    column_mapping, declared = load_declarations(mapping, attributes)
    if store is not None:
        from features.load import read_tables

        started = time.perf_counter()
        tables = store.read(store.url, taxonomy, schema=store.schema)
        return prepare_data(
            read_tables(tables, taxonomy, attributes=declared),
            taxonomy,
            load_s=time.perf_counter() - started,
            n_dates=as_of_dates,
            engine=engine,
            scheduler=scheduler,
            attributes=declared,
            models=models if models is not None else MODEL_NAMES,
            reward=reward,
        )
    return prepare(
        data if data is not None else Path("data"),
        taxonomy,
        mapping=column_mapping,
        n_dates=as_of_dates,
        engine=engine,
        scheduler=scheduler,
        attributes=declared,
        models=models if models is not None else MODEL_NAMES,
        reward=reward,
    )


@app.command()
def promote(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="phase, next-content or a declared outcome (churn, ...).")
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data directory to build the test split from; default ./data."),
    ] = None,
    store: StoreOption = None,
    store_schema: StoreSchemaOption = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Challenger version (default: newest).")
    ] = None,
    as_of_dates: Annotated[int, typer.Option("--as-of-dates", min=4)] = 12,
    tracking_uri: TrackingOption = None,
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    force: ForceOption = False,
    reward: RewardOption = "response",
    reward_event: RewardEventOption = None,
    reward_window_days: RewardWindowOption = 7,
    outcomes: OutcomesOption = None,
) -> None:
    """Score the newest version and the champion on the same test data; move `champion` to
    the newcomer only if it is better on the model's primary metric and beat its strongest
    baseline on the validation split (its gate), unless --force. Read DIR through --mapping
    as in training; custom attributes get their levels from DIR as in training (the same
    data gives the same levels); the reward of a next-action model must be the one it was
    trained for. Next content on data holding the service's decisions (--store, or the
    directory nba export writes) is judged on that served log instead: the newest version's
    top-1 policy valued off-policy (IPS, SNIPS, DR, 95 % intervals) on the decisions the
    service served, promoted only when its DR lower bound beats the champion's served value;
    the comparison is logged to MLflow."""
    from models.outcomes import load_outcomes
    from training.registry import promote as run_promotion
    from training.reward import Reward
    from training.tracking import configure_tracking
    from training.train import model_steps, parse_models, scorer_on_test_split

    tax = load_taxonomy_option(taxonomy)
    declared = load_outcomes(outcomes, taxonomy=tax)
    chosen = parse_models(model, declared)
    if len(chosen) != 1:
        raise InvalidInputError(f"model {model!r}: promote one model at a time")
    name = chosen[0]
    configure_tracking(tracking_uri)
    rewarded = Reward(
        _reward_kind(reward), tuple(reward_event or ()), window_days=reward_window_days
    )
    prepared = _prepare(
        data,
        tax,
        mapping,
        as_of_dates,
        "pandas",
        None,
        attributes=attributes,
        models=[name],
        reward=rewarded,
        store=_store_source(ctx, data, store, store_schema, mapping),
    )
    if name == "next-content":
        from training.log_promotion import has_served_log

        if has_served_log(prepared.data):
            typer.echo(_promote_on_log(prepared, tax, version=version, force=force))
            return
    score = scorer_on_test_split(name, prepared, tax, declared)
    metric = model_steps(name, declared).primary_metric.removeprefix("model.")
    outcome = run_promotion(name, score, metric=metric, version=version, force=force)
    typer.echo(outcome.format())


def _promote_on_log(
    prepared: Prepared, taxonomy: Taxonomy, *, version: str | None, force: bool
) -> str:
    """``nba promote next-content`` on data holding the service's decisions."""
    from mlflow import MlflowClient

    from training.log_promotion import judge, learned_until, promote_on_log, served_decisions
    from training.registry import latest_version, load_version
    from training.result import registered_name

    name = registered_name("next-content")
    challenger = version or latest_version(name)
    client = MlflowClient()
    run_id = client.get_model_version(name, challenger).run_id
    after = learned_until(client.get_run(str(run_id)).data.tags) if run_id else None
    rows, columns = served_decisions(
        prepared.data, taxonomy, after=after, attributes=prepared.attributes
    )
    judgement = judge(
        load_version(name, challenger), rows, columns, prepared.data.content, taxonomy
    )
    return promote_on_log(challenger, judgement, force=force).format()


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
    """Print each model's verdict against its strongest baseline and the quality table of
    its champion (else its newest version: model vs baselines vs references), or with
    --outcome one outcome model's figures beside its peer."""
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
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="Simulated world (see nba simulate): legacy by default, because the "
            "realistic one has too few customers and churns in a few hundred accounts to "
            "train the churn model; realistic needs a few thousand.",
        ),
    ] = "legacy",
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Last simulated day (UTC; default today): the data cover the 24 months "
            "before it. Same seed and end, same data.",
        ),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then start the service on the demo's store.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Interface the service listens on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Make every model champion even if it loses to its baseline (tagged "
            "nba.forced), so the service has something to serve.",
        ),
    ] = False,
) -> None:
    """Run the main job end to end on a small simulated data set ending today: simulate,
    validate, build features, train and register the three models (MLflow store in
    OUT/mlflow.db), load the data into the service's store OUT/nba.db with a demo API key,
    and print the `nba serve` command and page URLs (--serve starts it)."""
    from features.simulate import SimulationParams
    from training.demo import run_demo
    from training.demo import serve as run_service

    ran = run_demo(
        out,
        accounts,
        seed,
        load_taxonomy_option(None),
        params=SimulationParams.profile(profile),
        end=end,
        host=host,
        port=port,
        force=force,
    )
    typer.echo(json.dumps(ran.summary, indent=2))
    typer.echo(ran.handoff.text())
    if ran.losers_note:
        typer.echo(ran.losers_note)
    if serve:
        raise typer.Exit(run_service(ran.handoff))
