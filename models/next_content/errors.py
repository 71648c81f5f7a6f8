"""The error of the next-content model."""

from __future__ import annotations

from features.errors import InvalidInputError


class NextContentModelError(InvalidInputError):
    """The next-content model cannot be built, fitted or applied to these inputs."""
