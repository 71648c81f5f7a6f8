"""One feature value as a sentence: :func:`describe`.

Two tables decide the phrasing. Pipeline features are recognised by their name
(``_NAME_FAMILIES``: windowed counts and recencies per vocabulary); every other feature is
phrased from its one-line definition: categories and missing values first, then the
definition's form (``_DEFINITION_FORMS``: trends, shares, durations, counts, flags, ...),
else "<definition>: <value>".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from models.explain.words import (
    capitalise,
    category_label,
    days,
    event_nouns,
    fraction,
    humanise,
    is_category,
    is_missing,
    key_label,
    number,
    plural_head,
    singular,
    singular_phrase,
)

# Families of pipeline feature names (features.pipeline.feature_specs).
_COUNT = re.compile(r"^n_(channel|event|content_type|content_phase|role|topic)_(.+)_(\d+d|ever)$")
_RECENCY = re.compile(r"^days_since_(channel|event|content_type|content_phase|role)_(.+)$")
_TOUCHPOINTS = re.compile(r"^n_touchpoints_(\d+)d$")
_TREND = re.compile(r"^(.*?) in the last (\d+) days minus the \d+ days before$")
_PAREN = re.compile(r"\s*\(([^)]*)\)")
# "1 if <claim> (0: <the claim negated>)": the sentence for a false flag
_NEGATION = re.compile(r"\(0: ([^)]*)\)")
# "<definition> (empty if <why>)": the sentence for a missing value
_EMPTY = re.compile(r"\(empty if ([^)]*)\)")
# "days since the account's last <thing>": missing when there was no <thing>
_SINCE_LAST = re.compile(r"^days since (?:the account's |the )?last (.+)$")
# "the account's <things>, last <n> days" / "..., ever": a count of the account's rows
_ACCOUNT_COUNT = re.compile(r"^the account's (.+?), (?:last (\d+) days|ever)$")


def describe(
    name: str, value: Any, definition: str = "", *, labels: Mapping[str, str] | None = None
) -> str:
    """Returns the sentence for one feature value (see the package docstring for the
    families)."""
    labels = labels or {}
    family = _name_family(name)
    if family is not None:
        phrase, groups = family
        return phrase(groups, value, definition, labels)
    return _from_definition(name, value, definition, labels)


# --------------------------------------------------------------------------------------------
# Pipeline features, recognised by name


def _window_text(w: str) -> str:
    return "ever" if w == "ever" else f"in the last {w[:-1]} days"


def _count_text(value: Any, one: str, many: str, when: str) -> str:
    if is_missing(value):
        return f"{many} {when}: unknown"
    v = float(value)
    if v == 0:
        return f"no {many} {when}"
    if v == 1:
        return f"1 {one} {when}"
    return f"{number(v)} {many} {when}"


# Per vocabulary prefix of a count or recency name: (key, label) -> singular and plural noun
# of what is counted.
_NOUNS: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "channel": lambda key, label: (f"{label} touchpoint", f"{label} touchpoints"),
    "content_type": lambda key, label: (f"{label} touchpoint", f"{label} touchpoints"),
    "event": lambda key, label: event_nouns(key),
    "content_phase": lambda key, label: (
        f"touchpoint with {label} content",
        f"touchpoints with {label} content",
    ),
    "topic": lambda key, label: (
        f"touchpoint on {label} content",
        f"touchpoints on {label} content",
    ),
    "role": lambda key, label: (
        f"touchpoint from {label} contacts",
        f"touchpoints from {label} contacts",
    ),
}


def _touchpoints_family(
    groups: tuple[str, ...], value: Any, definition: str, labels: Mapping[str, str]
) -> str:
    return _count_text(value, "touchpoint", "touchpoints", _window_text(groups[0] + "d"))


def _count_family(
    groups: tuple[str, ...], value: Any, definition: str, labels: Mapping[str, str]
) -> str:
    prefix, key, w = groups
    label = key_label(key, definition, labels)
    when = _window_text(w)
    # a role nobody of engaged reads as people, not as touchpoints
    if prefix == "role" and not is_missing(value) and float(value) == 0:
        return f"no {label} contact engaged {when}"
    one, many = _NOUNS[prefix](key, label)
    return _count_text(value, one, many, when)


def _recency_family(
    groups: tuple[str, ...], value: Any, definition: str, labels: Mapping[str, str]
) -> str:
    prefix, key = groups
    label = key_label(key, definition, labels)
    if is_missing(value):
        if prefix == "role":
            return f"no {label} contact engaged so far"
        return f"no {_NOUNS[prefix](key, label)[0]} so far"
    return f"{days(value)} since the last {_NOUNS[prefix](key, label)[0]}"


_NameFamily = Callable[[tuple[str, ...], Any, str, Mapping[str, str]], str]
# Checked in order; the first pattern matching the name phrases the value.
_NAME_FAMILIES: tuple[tuple[re.Pattern[str], _NameFamily], ...] = (
    (_TOUCHPOINTS, _touchpoints_family),
    (_COUNT, _count_family),
    (_RECENCY, _recency_family),
)


# Cached: a model has a few hundred feature names, each explained again on every request.
@functools.lru_cache(maxsize=4096)
def _name_family(name: str) -> tuple[_NameFamily, tuple[str, ...]] | None:
    """Returns the phrasing of the name's family and the match's groups, or None."""
    for pattern, phrase in _NAME_FAMILIES:
        if m := pattern.match(name):
            return phrase, m.groups()
    return None


# --------------------------------------------------------------------------------------------
# Every other feature, phrased from its definition


class _Numeric(NamedTuple):
    """A numeric value to phrase, with what its phrasing may need."""

    name: str
    value: float
    base: str  # the definition without its parenthesised notes
    definition: str
    labels: Mapping[str, str]


# Category features by their definition (without notes): the sentence for a value, written
# for a rep rather than "<feature>: <value>".
_CATEGORY_FORMS: dict[str, str] = {
    "industry": "a company in {label}",
    "sales region": "an account in {label}",
    "phase last recorded in the CRM": "the CRM records the {label} phase",
    "buying-center role of the contact the content goes to": "for the {label} contact",
    "content type of the item": "the item is a {label}",
    "topic of the item": "the item is on {label}",
    "the content item itself": "the item itself: {label}",
}


def _from_definition(name: str, value: Any, definition: str, labels: Mapping[str, str]) -> str:
    base = _PAREN.sub("", definition).strip() or humanise(name)
    if isinstance(value, str) or is_category(value):
        label = category_label(value, labels)
        form = _CATEGORY_FORMS.get(base)
        return form.format(label=label) if form else f"{capitalise(base)}: {label}"
    if is_missing(value):
        empty = _EMPTY.search(definition)
        if empty:
            return f"{base}: {empty.group(1)}"
        if m := _SINCE_LAST.match(base):  # no last one: there was none
            return f"no {m.group(1)} so far"
        return f"{base}: unknown"
    n = _Numeric(name, float(value), base, definition, labels)
    if m := _TREND.match(base):
        return _trend_text(n.value, m)
    for prefix, phrase in _DEFINITION_FORMS:
        if base.startswith(prefix):
            return phrase(n, base[len(prefix) :])
    if m := _ACCOUNT_COUNT.match(base):
        when = f"in the last {m.group(2)} days" if m.group(2) else "so far"
        return _count_text(n.value, singular_phrase(m.group(1)), m.group(1), when)
    return _plural_or_plain_text(base, n.value)


def _trend_text(v: float, m: re.Match[str]) -> str:
    what = m.group(1)
    period = f"in the last {m.group(2)} days"
    before = f"the {m.group(2)} days before"
    if v == 0:
        return f"as many {what} {period} as in {before}"
    more = "more" if v > 0 else "fewer"
    return f"{number(abs(v))} {more} {what} {period} than in {before}"


def _share_text(n: _Numeric, rest: str) -> str:
    # "share of <whole> that <part>": "<fraction> of <whole> <part>"
    whole, that, part = rest.partition(" that ")
    return f"{fraction(n.value)} of {whole} {part}" if that else f"{fraction(n.value)} of {whole}"


def _days_since_text(n: _Numeric, rest: str) -> str:
    return f"{days(n.value)} since {rest}"


def _log10_text(n: _Numeric, rest: str) -> str:
    return "about " + describe(n.name + "__exp", round(10**n.value), rest, labels=n.labels)


def _number_of_text(n: _Numeric, rest: str) -> str:
    return f"no {rest}" if n.value == 0 else f"{number(n.value)} {rest}"


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _month_text(n: _Numeric, rest: str) -> str:
    # "month of the year (1 = January)" / "... the item is shown in": "in March"
    month = int(n.value)
    return f"in {_MONTHS[month - 1]}" if 1 <= month <= 12 else "in an unknown month"


def _weekday_text(n: _Numeric, rest: str) -> str:
    # "day of the week (0 = Monday, 6 = Sunday)": "on a Monday"
    day = int(n.value)
    return f"on a {_WEEKDAYS[day]}" if 0 <= day <= 6 else "on an unknown day"


def _slot_text(n: _Numeric, rest: str) -> str:
    # "slot the item is shown in (1 = first; ...)": "shown first" / "shown in slot 3"
    return "shown first" if n.value <= 1 else f"shown in slot {number(n.value)}"


def _rank_text(n: _Numeric, rest: str) -> str:
    # "rank of <thing> among <things> (0 = most engaged)": who leads, not a raw rank
    thing, among, things = rest.partition(" among ")
    if not among:
        return f"rank {number(n.value + 1)} of {rest}"
    if n.value == 0:
        return f"{thing} leads {things}"
    return f"{thing} comes {_ordinal(int(n.value) + 1)} among {things}"


def _ordinal(k: int) -> str:
    if 10 <= k % 100 <= 20:
        return f"{k}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _flag_text(n: _Numeric, claim: str) -> str:
    if n.value == 1:
        return claim
    negation = _NEGATION.search(n.definition)
    return negation.group(1) if negation else f"not the case that {claim}"


# Definition prefix -> phrasing of the value and the rest of the definition; checked in
# order, after trends and before the account's counts.
_DEFINITION_FORMS: tuple[tuple[str, Callable[[_Numeric, str], str]], ...] = (
    ("share of ", _share_text),
    ("days since ", _days_since_text),
    ("log10 of ", _log10_text),
    ("the number of ", _number_of_text),
    ("number of ", _number_of_text),
    ("1 if ", _flag_text),
    ("month of the year", _month_text),
    ("day of the week", _weekday_text),
    ("slot the item is shown in", _slot_text),
    ("rank of ", _rank_text),
)


def _plural_or_plain_text(base: str, v: float) -> str:
    head = plural_head(base)
    if head is None:
        # never a raw zero ("...: 0"): nothing of it is "no <it>"
        return f"no {base}" if v == 0 else f"{base}: {number(v)}"
    if v == 0:
        return f"no {base}"
    if v == 1:
        words = base.split()
        words[head] = singular(words[head])
        return f"1 {' '.join(words)}"
    return f"{number(v)} {base}"
