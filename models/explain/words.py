"""The English the sentences are made of: numbers, days, fractions, plurals, labels, and
which values count as missing or as categories."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

# Event nouns where the event name is a verb ("register" -> "registration").
EVENT_NOUNS = {
    "register": ("registration", "registrations"),
    "attend": ("attendance", "attendances"),
    "usage": ("usage event", "usage events"),
    "reply": ("reply", "replies"),
    "share": ("share of our content", "shares of our content"),
    "churn": ("churn event", "churn events"),
}
_ACRONYMS = {"crm": "CRM", "it": "IT", "eur": "EUR", "kpi": "KPI", "uk": "UK", "dach": "DACH"}
_FRACTIONS = (
    (0.0, "none"),
    (0.25, "a quarter"),
    (1 / 3, "a third"),
    (0.5, "half"),
    (2 / 3, "two thirds"),
    (0.75, "three quarters"),
    (1.0, "all"),
)
# Words that end a definition's leading noun phrase before any plural noun was seen.
_STOP = {"with", "who", "in", "of", "that", "the", "per", "and", "or", "ever", "since"}


# --------------------------------------------------------------------------------------------
# Values


def is_missing(value: Any) -> bool:
    """Returns True for None, NA, NaT and float NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def is_category(value: Any) -> bool:
    """Returns True for a present value that is not a number or a boolean."""
    return not isinstance(value, int | float | np.integer | np.floating | bool | np.bool_) and (
        not is_missing(value)
    )


def category_label(value: Any, labels: Mapping[str, str]) -> str:
    """Returns the label of a category value: from ``labels``, else the value as words."""
    if is_missing(value):
        return "unknown"
    text = str(value)
    return labels.get(text, capitalise(humanise(text)))


def key_label(key: str, definition: str, labels: Mapping[str, str]) -> str:
    """Returns the label of a vocabulary key in a feature name: from ``labels``, else the
    quoted label of the definition, else the key as words."""
    if key in labels:
        return labels[key]
    # the label is the last quoted part ("... touchpoint's content 'Case study' in ...")
    parts = definition.rsplit("'", 2)
    if len(parts) == 3 and parts[1] and not parts[1].startswith("s "):
        return parts[1]
    return capitalise(humanise(key))


# --------------------------------------------------------------------------------------------
# Words


def humanise(name: str) -> str:
    """Returns a snake_case name as words, acronyms in capitals."""
    return " ".join(_ACRONYMS.get(w, w) for w in name.split("_"))


def capitalise(text: str) -> str:
    """Returns ``text`` with its first character upper case."""
    return text[:1].upper() + text[1:]


def event_nouns(event: str) -> tuple[str, str]:
    """Returns the singular and plural noun of an event type."""
    if event in EVENT_NOUNS:
        return EVENT_NOUNS[event]
    one = event.replace("_", " ")
    return one, plural(one)


def plural(word: str) -> str:
    """Returns the plural of an English noun."""
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def singular(word: str) -> str:
    """Returns the singular of an English plural noun."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("shes", "ches", "xes", "sses")):
        return word[:-2]
    return word[:-1]


def singular_phrase(phrase: str) -> str:
    """Returns ``phrase`` with its leading plural noun made singular ("content touchpoints
    on ..." -> "content touchpoint on ...")."""
    head = plural_head(phrase)
    if head is None:
        return phrase
    words = phrase.split()
    words[head] = singular(words[head])
    return " ".join(words)


def plural_head(definition: str) -> int | None:
    """Returns the index of the plural noun the definition starts with, within its first
    two words ("contacts in the buying center", "economic buyers who left ..."), or None."""
    words = definition.split()
    for i, word in enumerate(words[:2]):
        if word in _STOP:
            return None
        if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            return i
    return None


# --------------------------------------------------------------------------------------------
# Numbers


def number(v: float) -> str:
    """Returns a number as people write it: "12,300", "2.5", "12.3 million"."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.1f} million"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.1f}"


def days(v: Any) -> str:
    """Returns a duration in whole days: "less than 1 day", "1 day", "40 days"."""
    d = float(v)
    if d < 1:
        return "less than 1 day"
    whole = int(math.floor(d))
    return "1 day" if whole == 1 else f"{whole:,} days"


def fraction(v: float) -> str:
    """Returns a share in words ("a quarter", "half") or in percent."""
    for target, words in _FRACTIONS:
        if abs(v - target) < 1e-9:
            return words
    if 0 < v < 0.005:  # not "0 %": some, less than a percent
        return "less than 1 %"
    return f"{round(100 * v)} %"
