"""The error of the reason-code functions."""

from __future__ import annotations

from features.errors import InvalidInputError


class ExplainError(InvalidInputError):
    """Contributions that do not match the features or the model; the message says how."""
