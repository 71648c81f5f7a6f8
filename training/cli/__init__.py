"""The training layer's commands: ``nba train``, ``nba promote``, ``nba report`` and
``nba demo``, one module each (their shared options and data sources in ``options``).

Commands raise :class:`~features.errors.NbaError` for a user's mistake; the root ``nba`` app
turns it into a message and an exit code once. Heavy libraries are imported inside each
command, which keeps ``nba --help`` fast.
"""

from __future__ import annotations

import typer

from training.cli import demo, promote, report, train

app = typer.Typer(add_completion=False)
app.command()(train.train)
app.command()(promote.promote)
app.command()(promote.challenge)
app.command()(report.report)
app.command()(demo.demo)
