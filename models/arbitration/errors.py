"""The two errors arbitration raises: a config it cannot use, inputs it cannot rank."""

from __future__ import annotations

from features.errors import InvalidInputError


class ArbitrationConfigError(InvalidInputError):
    """An arbitration config file that cannot be used; the message names the file and key."""


class ArbitrationError(InvalidInputError):
    """Inputs arbitration cannot rank; the message names the table, column and value."""
