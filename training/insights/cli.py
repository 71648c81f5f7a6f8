"""``nba insights``: the journey insights report of a data directory or the service's store
(``features.insights``), as HTML with plots, JSON and CSV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from features.cli import (
    AttributesOption,
    JsonOption,
    MappingOption,
    StoreOption,
    StoreSchemaOption,
    TaxonomyOption,
    echo_json,
    load_taxonomy_option,
    peak_memory_mb,
    read_data,
    store_reader,
)
from features.errors import InvalidInputError

app = typer.Typer(add_completion=False)


@app.command()
def insights(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the report into.", file_okay=False)
    ],
    data: Annotated[
        Path | None, typer.Option("--data", help="Data directory (CSV or Parquet tables).")
    ] = None,
    store: StoreOption = None,
    store_schema: StoreSchemaOption = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day of the period (UTC); default 90 days before --to."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Day after the period (UTC, exclusive); default the day after the latest event.",
        ),
    ] = None,
    every: Annotated[str, typer.Option("--every", help="Trend buckets: week or month.")] = "month",
    mapping: MappingOption = None,
    attributes: AttributesOption = None,
    taxonomy: TaxonomyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Journey KPIs per phase, channel, content and role with trends, the content gap matrix
    and the journey map over a period: OUT/index.html with plots, insights.json and CSVs."""
    from features.insights import compute_insights, resolve_period
    from features.load import read_tables
    from training.insights.report import write_report

    tax = load_taxonomy_option(taxonomy)
    started = time.perf_counter()
    if (data is None) == (store is None):
        raise InvalidInputError("give one source: --data DIR or --store URL")
    if store is not None:
        if mapping is not None:
            raise InvalidInputError("--mapping maps a data directory; the store is in the contract")
        from features.cli import load_declarations

        _, declared = load_declarations(None, attributes)
        tables = store_reader(ctx)(store, tax, schema=store_schema or None)
        loaded = read_tables(tables, tax, attributes=declared)
    else:
        assert data is not None
        loaded, _ = read_data(data, tax, mapping, attributes)
    read_s = time.perf_counter() - started
    tp = loaded.touchpoints
    period = resolve_period(start, end, every=every, last_event=tp["ts"].max() if len(tp) else None)
    started = time.perf_counter()
    result = compute_insights(loaded, tax, period)
    compute_s = time.perf_counter() - started
    started = time.perf_counter()
    written = write_report(result, out)
    write_s = time.perf_counter() - started
    if as_json:
        echo_json(
            {
                **result.summary(),
                "out": str(out),
                "files": sorted(p.name for p in written.values()),
                "read_seconds": round(read_s, 2),
                "compute_seconds": round(compute_s, 2),
                "write_seconds": round(write_s, 2),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        return
    typer.echo(
        f"wrote {written['html']} ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}, per "
        f"{period.every}) in {read_s + compute_s + write_s:.1f} s"
    )
    for note in result.notes:
        typer.echo(f"note: {note}")
