"""The root ``nba`` app: it only mounts the layers' commands and reports their errors.

Each layer owns its commands (``features/cli.py``, ``training/cli.py``, ``serving/cli.py``);
this is the one module that sees every layer, and hands the commands of one layer what
another provides (:class:`features.cli.Readers`: training reads the store through serving's
reader). A command raises
:class:`~features.errors.NbaError` for a user's mistake, and :class:`_NbaGroup` turns it into
``error: <message>`` on stderr and the exit code of its kind, once for every command; a file
that is not there counts as the user's mistake too. ``nba --debug ...`` shows the traceback
instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from features import cli as features_cli
from features.errors import EXIT_CODES, NbaError
from serving import cli as serving_cli
from training import cli as training_cli
from training.insights import cli as insights_cli


class _NbaGroup(TyperGroup):
    """The root command group: maps the project's errors to a message and an exit code."""

    # typer vendors click privately (typer._click); its public Context is a subclass.
    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (NbaError, FileNotFoundError) as exc:
            if ctx.params.get("debug"):
                raise
            message = exc.details if isinstance(exc, NbaError) else str(exc)
            typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
            code = exc.exit_code if isinstance(exc, NbaError) else EXIT_CODES["invalid"]
            raise typer.Exit(code) from exc


app = typer.Typer(
    name="nba",
    cls=_NbaGroup,
    help="journey-nba: next-best-action for B2B customer journeys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(features_cli.app)
app.add_typer(training_cli.app)
app.add_typer(insights_cli.app)
app.add_typer(serving_cli.app)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not just its message.")
    ] = False,
) -> None:
    """journey-nba: next-best-action for B2B customer journeys."""
    # Training reads the service's store (nba train --store) through the serving layer's
    # reader, handed down here: the layers never import each other.
    ctx.obj = features_cli.Readers(store=serving_cli.store_tables)


def main() -> None:
    """Console entry point."""
    app(prog_name="nba")
