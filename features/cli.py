"""The features layer's commands (``nba simulate``, ``nba validate``, ``nba features``) and
the options and argument parsing every layer's commands share.

Commands raise :class:`~features.errors.NbaError` for a user's mistake; the root ``nba`` app
turns it into a message and an exit code once. Heavy libraries are imported inside each
command, which keeps ``nba --help`` fast.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Protocol

import typer

from features.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from features.attributes import AttributeDeclaration
    from features.mapping import ColumnMapping
    from features.problems import ValidationReport
    from features.schema import JourneyData
    from features.taxonomy import Taxonomy

app = typer.Typer(add_completion=False)

Engine = Literal["pandas", "dask"]

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
AttributesOption = Annotated[
    Path | None,
    typer.Option(
        "--attributes",
        envvar="NBA_ATTRIBUTES",
        help="YAML declaring custom attribute columns (e.g. accounts: {plan: category}) for "
        "data without a mapping; with --mapping, declare them in its attributes section.",
        dir_okay=False,
    ),
]
EngineOption = Annotated[
    str, typer.Option("--engine", help="Feature engine: pandas (one machine) or dask (a cluster).")
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="NBA_DASK_SCHEDULER",
        help="Dask scheduler address; default starts a 2-worker LocalCluster.",
    ),
]
PartitionsOption = Annotated[
    int | None,
    typer.Option(
        "--partitions",
        min=1,
        help="--engine dask: account ranges, one task each (default: one per 50,000 "
        "accounts, at least two per worker); a worker's memory grows with its range.",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON object (rows, problems, notes, seconds, peak memory) "
        "instead of the text.",
    ),
]


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Read the service's store at this URL (sqlite:///nba.db, postgresql://...) "
        "instead of a data directory: its journey tables, its served decisions as exposures "
        "and converted feedback as touchpoints (what nba export writes).",
    ),
]
StoreSchemaOption = Annotated[
    str | None,
    typer.Option(
        "--store-schema",
        envvar="NBA_DATABASE_SCHEMA",
        help="PostgreSQL schema holding the store's tables (with --store).",
    ),
]


class StoreReader(Protocol):
    """Reads the service's store at ``url`` (PostgreSQL tables in ``schema``) as the data
    contract's tables, unvalidated (``serving.cli.store_tables``)."""

    def __call__(
        self, url: str, taxonomy: Taxonomy, *, schema: str | None
    ) -> Mapping[str, pd.DataFrame]: ...


@dataclass(frozen=True)
class Readers:
    """What the root ``nba`` app hands every command in ``typer.Context.obj``: readers one
    layer provides and another may not import (training reads the store through serving's
    reader)."""

    store: StoreReader


def store_reader(ctx: typer.Context) -> StoreReader:
    """The store reader the root app handed to the command of ``ctx``."""
    readers = ctx.find_object(Readers)
    if readers is None:
        raise InvalidInputError("--store needs the nba command (it reads the store for training)")
    return readers.store


def load_taxonomy_option(path: Path | None) -> Taxonomy:
    """The taxonomy of a ``--taxonomy`` option (the shipped one when ``None``)."""
    from features.taxonomy import load_taxonomy

    return load_taxonomy(path)


def parse_engine(value: str) -> Engine:
    """``--engine``'s value, or InvalidInputError naming the choices."""
    if value == "pandas":
        return "pandas"
    if value == "dask":
        return "dask"
    raise InvalidInputError(f"--engine {value!r} is not one of pandas, dask")


def parse_time(value: str, option: str) -> pd.Timestamp:
    """``value`` of ``option`` as a UTC timestamp (naive = UTC), or InvalidInputError."""
    from features.timestamps import to_utc

    try:
        return to_utc(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{option} {value!r} is not a date (expected e.g. 2025-06-01)"
        ) from exc


def load_declarations(
    mapping: Path | None, attributes: Path | None
) -> tuple[ColumnMapping | None, AttributeDeclaration]:
    """The ``--mapping`` file's mapping (if any) and the custom attributes declared in it or
    in the ``--attributes`` file (one of the two; both is an error)."""
    from features.attributes import NO_ATTRIBUTES, resolve_attributes
    from features.mapping import load_mapping

    column_mapping = load_mapping(mapping) if mapping is not None else None
    declared = column_mapping.attributes if column_mapping is not None else NO_ATTRIBUTES
    return column_mapping, resolve_attributes(declared, attributes)


def read_data(
    data_dir: Path, taxonomy: Taxonomy, mapping: Path | None, attributes: Path | None = None
) -> tuple[JourneyData, ValidationReport]:
    """The validated tables of ``data_dir`` through the ``--mapping`` file, if any, with the
    declared custom attribute columns, and the validation report (row counts, notes); raises
    DataValidationError with the full report when the data break the contract."""
    from features.problems import DataValidationError
    from features.validate import check_data_dir

    column_mapping, declared = load_declarations(mapping, attributes)
    data, report = check_data_dir(data_dir, taxonomy, mapping=column_mapping, attributes=declared)
    if data is None:
        raise DataValidationError(report)
    return data, report


def peak_memory_mb() -> float:
    """The peak resident memory of this process so far, in MB (Linux reports KiB, macOS
    bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def echo_json(result: dict[str, object]) -> None:
    """Print ``result`` as one line of JSON (what ``--json`` prints; scripts read it)."""
    typer.echo(json.dumps(result, separators=(",", ":")))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Data directory to write.", file_okay=False)],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Number of accounts.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same data.")] = 7,
    start: Annotated[
        str, typer.Option("--start", help="First simulated day (UTC).")
    ] = "2024-01-01",
    months: Annotated[int, typer.Option("--months", min=1, help="Months to simulate.")] = 24,
    oracle_as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--oracle-as-of",
            help="An as-of date (UTC) for the churn oracle in truth/churn_oracle.parquet: each "
            "customer's probability of churning within 90 days given the latent state, by Monte "
            "Carlo (repeatable; training reports it for the test dates it covers).",
        ),
    ] = None,
    oracle_draws: Annotated[
        int, typer.Option("--oracle-draws", min=1, help="Monte Carlo draws of the churn oracle.")
    ] = 100,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="World: realistic (calibrated to published B2B figures, docs/realism.md) "
            "or legacy (the world before that calibration).",
        ),
    ] = "realistic",
    taxonomy: TaxonomyOption = None,
    chunk_accounts: Annotated[
        int,
        typer.Option(
            "--chunk-accounts",
            min=1,
            help="Simulate at most this many accounts at a time (memory grows with it, about "
            "2-3 GB per 100,000); more accounts are written chunk by chunk, each chunk from its "
            "own seed (features.simulate.chunked), so one chunk is the unchunked world.",
        ),
    ] = 100_000,
) -> None:
    """Simulate B2B journeys: writes the six tables as Parquet plus OUT/truth/."""
    from features.simulate import SimulationParams
    from features.simulate.chunked import write_simulation_chunked

    started = time.perf_counter()
    summary = write_simulation_chunked(
        out,
        accounts,
        seed,
        chunk_accounts=chunk_accounts,
        start=parse_time(start, "--start"),
        months=months,
        taxonomy=load_taxonomy_option(taxonomy),
        oracle_as_of=[parse_time(t, "--oracle-as-of") for t in oracle_as_of or []],
        oracle_draws=oracle_draws,
        params=SimulationParams.profile(profile),
    )
    chunks = f" ({len(summary.chunks)} chunks)" if len(summary.chunks) > 1 else ""
    typer.echo(
        f"wrote {out}: "
        + ", ".join(f"{n:,} {name}" for name, n in summary.rows.items())
        + f" in {time.perf_counter() - started:.1f} s{chunks}"
    )


def _features_on_dask(
    data: Path,
    dates: list[pd.Timestamp],
    tax: Taxonomy,
    out: Path,
    scheduler: str | None,
    partitions: int | None,
    declarations: Path | None,
    as_json: bool,
) -> None:
    """``nba features --engine dask``: the workers read, validate and compute account ranges
    of the Parquet directory and write ``out`` as a directory of parts
    (``features.pipeline.dask_files``)."""
    from features.pipeline.dask_files import write_features_dask

    if declarations is not None:
        raise InvalidInputError(
            "--engine dask reads canonical Parquet directories: no --mapping or --attributes"
        )
    started = time.perf_counter()
    result = write_features_dask(data, dates, tax, out, scheduler=scheduler, npartitions=partitions)
    seconds = time.perf_counter() - started
    if as_json:
        echo_json(
            {
                "rows": result.rows,
                "features": len(result.features),
                "features_not_constant": len(result.not_constant),
                "rows_in": result.rows_in,
                "partitions": result.partitions,
                "seconds": round(seconds, 2),
                "peak_memory_mb": peak_memory_mb(),
                "worker_peak_memory_mb": result.worker_peak_mb,
            }
        )
        return
    typer.echo(
        f"wrote {out}/: {result.rows:,} rows x {len(result.features)} features in "
        f"{result.partitions} parts in {seconds:.1f} s (dask)"
    )


@app.command()
def validate(
    data_dir: Annotated[
        Path, typer.Argument(help="Directory with <table>.csv or <table>.parquet files.")
    ],
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a data directory against the data contract; exit 0 if good, 1 with a report."""
    from features.validate import validate_data_dir

    started = time.perf_counter()
    column_mapping, declared = load_declarations(mapping, attributes)
    report = validate_data_dir(
        data_dir, load_taxonomy_option(taxonomy), mapping=column_mapping, attributes=declared
    )
    if as_json:
        echo_json(
            {
                **report.summary(),
                "seconds": round(time.perf_counter() - started, 2),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
    else:
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
    engine: EngineOption = "pandas",
    scheduler: SchedulerOption = None,
    partitions: PartitionsOption = None,
    list_features: Annotated[
        bool, typer.Option("--list", help="Print every feature with its definition and exit.")
    ] = False,
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build point-in-time account features: one row per (account, as-of date). Custom
    attributes get their levels from the data read (``--list``: without per-level counts)."""
    from features.attributes import FittedAttributes
    from features.pipeline import build_features, feature_definitions
    from features.pipeline.attributes import fit_attributes

    tax = load_taxonomy_option(taxonomy)
    if list_features:
        _, declared = load_declarations(mapping, attributes)
        definitions = feature_definitions(tax, FittedAttributes(declared))
        width = max(len(name) for name in definitions)
        for name, text in definitions.items():
            typer.echo(f"{name:<{width}}  {text}")
        return
    if data is None or not as_of or out is None:
        missing = [f for f, v in (("--data", data), ("--as-of", as_of), ("--out", out)) if not v]
        raise InvalidInputError(
            f"missing {', '.join(missing)} (or pass --list to list the features)"
        )
    chosen = parse_engine(engine)
    dates = [parse_time(v, "--as-of") for v in as_of]
    if chosen == "dask":
        _features_on_dask(
            data, dates, tax, out, scheduler, partitions, mapping or attributes, as_json
        )
        return
    _, declared = load_declarations(mapping, attributes)
    started = time.perf_counter()
    loaded, report = read_data(data, tax, mapping, attributes)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    fitted = fit_attributes(loaded, declared, before=max(dates))
    frame = build_features(
        loaded, dates, tax, engine=chosen, scheduler=scheduler, attributes=fitted
    )
    build_s = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    built = frame.drop(columns=["account_id", "as_of"])
    if as_json:
        echo_json(
            {
                "rows": len(frame),
                "features": built.shape[1],
                # a feature with one value in every row tells a model nothing here
                "features_not_constant": int((built.nunique(dropna=False) > 1).sum()),
                "rows_in": report.row_counts,
                "notes": report.notes,
                "read_seconds": round(read_s, 2),
                "build_seconds": round(build_s, 2),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        return
    typer.echo(
        f"wrote {out}: {len(frame):,} rows x {built.shape[1]} features "
        f"in {build_s:.1f} s ({engine})"
    )
