"""``nba demo``: the main job end to end on a small simulated data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from features.cli import load_taxonomy_option


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
