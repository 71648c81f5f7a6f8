"""``python -m nba``: the same as the ``nba`` command."""

from nba.cli import main

main()
