"""``nba report``: each model's verdict against its baseline, or one outcome's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast

import typer

from features.errors import InvalidInputError
from training.cli.options import TrackingOption


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
