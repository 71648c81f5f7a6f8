"""What both store databases can hold as given: the id rule of every id the API takes, text
without NUL or lone surrogates, and input quoted short in a message. The API's request models
(``serving.schemas``) and the record checks of ingestion (``serving.store.ingest``) both use
these, so a value is judged the same way at the edge and per record."""

from __future__ import annotations

import re
import reprlib

# The id rule of every id the API takes (event, account, contact, content, rep and
# recommendation ids), in the body or the path: what both databases store and compare as
# given. PostgreSQL text cannot hold NUL, and a lone surrogate (JSON "\ud800") cannot be
# encoded as UTF-8 for either database.
MAX_ID_LENGTH = 255
ID_RULE = (
    f"an id is 1 to {MAX_ID_LENGTH} characters of printable Unicode, not only whitespace: "
    "no control characters (U+0000-U+001F, U+007F-U+009F, NUL included) and no lone "
    "surrogates (U+D800-U+DFFF)"
)

_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free text (a feedback note) may hold line breaks and tabs, but nothing a database rejects.
_TEXT_FORBIDDEN = re.compile(r"[\x00\ud800-\udfff]")
# Values quoted in a reason are cut short: a reason names the problem, it does not echo a
# megabyte of input.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 80
_SHORT.maxlong = 40
_SHORT.maxother = 80


def shown(value: object) -> str:
    """Returns ``repr(value)`` cut to about 80 characters, for quoting input in a message
    (escaped, so a control character or lone surrogate in it is shown, not sent)."""
    return _SHORT.repr(value)


def _bad_character(value: str, forbidden: re.Pattern[str]) -> str | None:
    found = forbidden.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"contains {what} (U+{ord(char):04X}) at position {found.start()}"


def id_problem(value: str) -> str | None:
    """Returns None when ``value`` follows :data:`ID_RULE`, else what is wrong with it."""
    if not value.strip():
        return "is empty or only whitespace"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long"
    return _bad_character(value, _ID_FORBIDDEN)


def text_problem(value: str) -> str | None:
    """Returns None when both databases can store ``value`` as text, else what is wrong
    with it (a NUL or a lone surrogate)."""
    return _bad_character(value, _TEXT_FORBIDDEN)


def check_id(value: str) -> str:
    """Returns ``value`` when it follows :data:`ID_RULE`; raises ValueError saying what is
    wrong otherwise (the API's request models and path parameters validate with it)."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"{problem}; {ID_RULE}")
    return value


def check_text(value: str) -> str:
    """Returns ``value`` when both databases can store it as text; raises ValueError
    otherwise."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{problem}; expected text without NUL or lone surrogates")
    return value
