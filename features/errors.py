"""The one root of journey-nba's errors.

Every error the project raises on purpose derives from :class:`NbaError` through one of four
kinds, and the kind alone decides how a shell reports it: the service maps it to an HTTP
status in one exception handler, the ``nba`` command to an exit code and a one-line message.
So a layer raises what went wrong and never translates it itself.

The kinds also derive from the built-in exception a caller would expect (``ValueError`` for
invalid input, ``LookupError`` for something missing, ``RuntimeError`` for a dependency that
is down), so code that catches those keeps working.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal["invalid", "not_found", "conflict", "unavailable"]

# How the root CLI ends for each kind (1 stays "the data broke the contract", see
# DataValidationError; 2 is what click uses for a bad command line).
EXIT_CODES: dict[ErrorKind, int] = {
    "invalid": 2,
    "not_found": 3,
    "conflict": 4,
    "unavailable": 5,
}

# How the service answers each kind.
HTTP_STATUSES: dict[ErrorKind, int] = {
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "unavailable": 503,
}


class NbaError(Exception):
    """An error of journey-nba; the message names what is wrong, where, and what was
    expected. ``kind`` says whose problem it is; ``exit_code`` and ``http_status`` follow from
    it unless a class has a more precise one."""

    kind: ClassVar[ErrorKind] = "invalid"
    exit_code_override: ClassVar[int | None] = None
    http_status_override: ClassVar[int | None] = None

    @property
    def exit_code(self) -> int:
        """The ``nba`` command's exit code for this error."""
        return self.exit_code_override or EXIT_CODES[self.kind]

    @property
    def http_status(self) -> int:
        """The HTTP status the service answers this error with."""
        return self.http_status_override or HTTP_STATUSES[self.kind]

    @property
    def details(self) -> str:
        """The full text for a person (a multi-line report where there is one)."""
        return str(self)


class InvalidInputError(NbaError, ValueError):
    """Input that cannot be used as given: data, a file, an argument, a setting."""

    kind: ClassVar[ErrorKind] = "invalid"


class NotFoundError(NbaError, LookupError):
    """Something asked for by name or id that does not exist."""

    kind: ClassVar[ErrorKind] = "not_found"


class ConflictError(NbaError):
    """A request that contradicts what is stored (e.g. a name already taken)."""

    kind: ClassVar[ErrorKind] = "conflict"


class UnavailableError(NbaError, RuntimeError):
    """A dependency (database, registry, model) that cannot serve right now."""

    kind: ClassVar[ErrorKind] = "unavailable"
    # Seconds a client should wait before trying again (the service's Retry-After), for
    # errors that pass on their own (a busy worker or store); None: no advice.
    retry_after_s: ClassVar[int | None] = None
