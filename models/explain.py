"""Reason codes: LightGBM feature contributions turned into sentences people understand.

:func:`contributions_for` asks LightGBM for SHAP-style contributions (``pred_contrib=True``:
one value per feature plus the bias, summing to the raw score). :func:`reason_codes` keeps
the features that push the output in the explained direction, strongest first, and phrases
each from its name family and one-line definition (``features.pipeline.feature_definitions``
and ``models.next_content.CANDIDATE_DEFINITIONS``), not from a hand-written list per feature:

- ``n_content_type_whitepaper_30d = 3``  -> "3 Whitepaper touchpoints in the last 30 days"
- ``n_event_download_30d = 3``           -> "3 downloads in the last 30 days"
- ``n_role_it_90d = 0``                  -> "no IT contact engaged in the last 90 days"
- ``days_since_event_purchase = 40``     -> "40 days since the last purchase"
- ``share_roles_engaged_90d = 0.5``      -> "half of the buying center's roles engaged in the
  last 90 days"
- ``crm_phase = selection``              -> "CRM phase: Selection"

Anything no family covers reads "<definition>: <value>". Labels of category values come
from ``labels`` (e.g. :func:`taxonomy_labels`), then from the quoted label in the definition,
then from the value itself.

``pred_contrib`` is slow (1.5 ms per binary row, 3.7 ms per 8-class row): compute reasons
off the warm request path or for the few rows shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from features.taxonomy import Taxonomy
from models.fitting import model_columns


class ExplainError(InvalidInputError):
    """Contributions that do not match the features or the model; the message says how."""


@dataclass(frozen=True)
class Reason:
    """One reason code: the feature, its value for the row, its contribution to the raw
    score (log-odds for binary models) and the sentence shown to people."""

    feature: str
    value: Any
    contribution: float
    text: str


# --------------------------------------------------------------------------------------------
# Contributions


def contributions_for(
    estimator: Any, x: pd.DataFrame | np.ndarray, *, class_index: int | None = None
) -> np.ndarray:
    """Feature contributions, shape ``(len(x), n_features + 1)`` (last column: the bias),
    for an ``LGBMClassifier`` or a ``lightgbm.Booster``. A DataFrame ``x`` may hold more
    columns than the model uses; they are selected by name. For a multiclass model
    ``class_index`` (the position of the class in ``predict_proba``'s columns) picks the
    class; it is required there and ignored for binary models."""
    booster = getattr(estimator, "booster_", estimator)
    if isinstance(x, pd.DataFrame):
        x = x[model_columns(estimator)]
    raw = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None, :]
    n_features = booster.num_feature()
    width = n_features + 1
    n_classes = raw.shape[1] // width
    if raw.shape[1] != n_classes * width:
        raise ExplainError(
            f"pred_contrib returned {raw.shape[1]} columns for {n_features} features; expected "
            "a multiple of n_features + 1"
        )
    if n_classes == 1:
        return raw
    if class_index is None:
        raise ExplainError(
            f"the model has {n_classes} classes; pass class_index (0..{n_classes - 1})"
        )
    if not 0 <= class_index < n_classes:
        raise ExplainError(f"class_index {class_index} is outside 0..{n_classes - 1}")
    return raw[:, class_index * width : (class_index + 1) * width]


# --------------------------------------------------------------------------------------------
# Reason codes


def reason_codes(
    contributions: np.ndarray,
    feature_names: Sequence[str],
    values: Mapping[str, Any] | pd.Series,
    *,
    top: int = 3,
    direction: int = 1,
    definitions: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> list[Reason]:
    """At most ``top`` reasons for one row, strongest first.

    ``contributions`` is the row's ``(n_features + 1,)`` contributions (last: bias) in the
    order of ``feature_names``; ``direction`` +1 explains a high output (features with
    positive contributions), -1 a low one. Features with no contribution in that direction
    are never reasons. ``values`` maps feature names to the row's values (missing -> NaN).
    """
    c = np.asarray(contributions, dtype=np.float64).ravel()
    if len(c) != len(feature_names) + 1:
        raise ExplainError(
            f"contributions has {len(c)} values for {len(feature_names)} features; expected "
            "n_features + 1 (the last is the bias)"
        )
    if direction not in (1, -1):
        raise ExplainError(f"direction {direction!r}; expected +1 or -1")
    signed = c[:-1] * direction
    order = np.argsort(-signed, kind="stable")
    out: list[Reason] = []
    for i in order[: max(top, 0)].tolist():
        if not signed[i] > 0:
            break
        name = feature_names[i]
        value = values.get(name, math.nan)
        text = describe(name, value, definitions.get(name, ""), labels=labels)
        out.append(
            Reason(
                feature=name,
                value=_plain(value),
                contribution=float(c[i]),
                text=_name_the_item(text, values, labels or {}),
            )
        )
    return out


# Phrases of candidate-feature sentences that the row itself can name ("the item's topic"
# -> "Security", "the contact's role" -> "the IT role"): a rep reads which, not a reference.
_ITEM_PHRASES = {"the item's topic": "content_topic", "the contact's role": "contact_role"}


def _name_the_item(
    text: str, values: Mapping[str, Any] | pd.Series, labels: Mapping[str, str]
) -> str:
    for phrase, column in _ITEM_PHRASES.items():
        if phrase in text:
            value = values.get(column, None)
            if not _is_missing(value):
                label = _category_label(value, labels)
                text = text.replace(
                    phrase, label if column == "content_topic" else f"the {label} role"
                )
    return text


def taxonomy_labels(taxonomy: Taxonomy) -> dict[str, str]:
    """Value name -> label for every labelled vocabulary of the taxonomy (phases of the
    default model, roles, channels, event types, content types, topics)."""
    out: dict[str, str] = {}
    phases = taxonomy.phase_models[taxonomy.default_phase_model].phases
    for group in (
        phases,
        taxonomy.roles,
        taxonomy.channels,
        taxonomy.event_types,
        taxonomy.content_types,
        taxonomy.topics,
    ):
        for item in group:
            out.setdefault(item.name, item.label)
    return out


# Families of pipeline feature names (features.pipeline.feature_specs).
_COUNT = re.compile(r"^n_(channel|event|content_type|content_phase|role|topic)_(.+)_(\d+d|ever)$")
_RECENCY = re.compile(r"^days_since_(channel|event|content_type|content_phase|role)_(.+)$")
_TOUCHPOINTS = re.compile(r"^n_touchpoints_(\d+)d$")
_TREND = re.compile(r"^(.*?) in the last (\d+) days minus the \d+ days before$")
_PAREN = re.compile(r"\s*\(([^)]*)\)")
# "1 if <claim> (0: <the claim negated>)": the sentence for a false flag
_NEGATION = re.compile(r"\(0: ([^)]*)\)")
# "the account's <things>, last <n> days" / "..., ever": a count of the account's rows
_ACCOUNT_COUNT = re.compile(r"^the account's (.+?), (?:last (\d+) days|ever)$")
# Event nouns where the event name is a verb ("register" -> "registration").
_EVENT_NOUNS = {
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
_STOP = {"with", "who", "in", "of", "that", "the", "per", "and", "or", "ever", "since"}


def describe(
    name: str, value: Any, definition: str = "", *, labels: Mapping[str, str] | None = None
) -> str:
    """The sentence for one feature value (see the module docstring for the families)."""
    labels = labels or {}
    missing = _is_missing(value)
    window = _window_text
    if m := _TOUCHPOINTS.match(name):
        return _count_text(value, "touchpoint", "touchpoints", window(m.group(1) + "d"))
    if m := _COUNT.match(name):
        prefix, key, w = m.groups()
        label = _label(key, definition, labels)
        when = window(w)
        if prefix in ("channel", "content_type"):
            return _count_text(value, f"{label} touchpoint", f"{label} touchpoints", when)
        if prefix == "event":
            one, many = _event_nouns(key)
            return _count_text(value, one, many, when)
        if prefix == "content_phase":
            return _count_text(
                value, f"touchpoint with {label} content", f"touchpoints with {label} content", when
            )
        if prefix == "topic":
            return _count_text(
                value, f"touchpoint on {label} content", f"touchpoints on {label} content", when
            )
        # role
        if not missing and float(value) == 0:
            return f"no {label} contact engaged {when}"
        return _count_text(
            value, f"touchpoint from {label} contacts", f"touchpoints from {label} contacts", when
        )
    if m := _RECENCY.match(name):
        prefix, key = m.groups()
        label = _label(key, definition, labels)
        if prefix == "event":
            what = _event_nouns(key)[0]
        elif prefix == "content_phase":
            what = f"touchpoint with {label} content"
        elif prefix == "role":
            if missing:
                return f"no {label} contact engaged so far"
            what = f"touchpoint from {label} contacts"
        else:
            what = f"{label} touchpoint"
        if missing:
            return f"no {what} so far"
        return f"{_days(value)} since the last {what}"

    negation = _NEGATION.search(definition)
    base = _PAREN.sub("", definition).strip()
    if not base:
        base = _humanise(name)
    if isinstance(value, str) or _is_category(value):
        return f"{_capitalise(_humanise(name))}: {_category_label(value, labels)}"
    if missing:
        empty = re.search(r"\(empty if ([^)]*)\)", definition)
        return f"{base}: {empty.group(1) if empty else 'unknown'}"
    v = float(value)
    if m := _TREND.match(base):
        what = m.group(1)
        period = f"in the last {m.group(2)} days"
        before = f"the {m.group(2)} days before"
        if v == 0:
            return f"as many {what} {period} as in {before}"
        more = "more" if v > 0 else "fewer"
        return f"{_number(abs(v))} {more} {what} {period} than in {before}"
    if base.startswith("share of "):
        # "share of <whole> that <part>": "<fraction> of <whole> <part>"
        whole, that, part = base[len("share of ") :].partition(" that ")
        return f"{_fraction(v)} of {whole} {part}" if that else f"{_fraction(v)} of {whole}"
    if base.startswith("days since "):
        return f"{_days(v)} since {base[len('days since ') :]}"
    if base.startswith("log10 of "):
        inner = base[len("log10 of ") :]
        return "about " + describe(name + "__exp", round(10**v), inner, labels=labels)
    if base.startswith("the number of "):
        return f"{_number(v)} {base[len('the number of ') :]}"
    if base.startswith("number of "):
        return f"{_number(v)} {base[len('number of ') :]}"
    if base.startswith("1 if "):
        claim = base[len("1 if ") :]
        if v == 1:
            return claim
        return negation.group(1) if negation else f"not the case that {claim}"
    if m := _ACCOUNT_COUNT.match(base):
        when = f"in the last {m.group(2)} days" if m.group(2) else "so far"
        return _count_text(v, _singular_phrase(m.group(1)), m.group(1), when)
    head = _plural_head(base)
    if head is not None:
        words = base.split()
        if v == 0:
            return f"no {base}"
        if v == 1:
            words[head] = _singular(words[head])
            return f"1 {' '.join(words)}"
        return f"{_number(v)} {base}"
    return f"{base}: {_number(v)}"


def _window_text(w: str) -> str:
    return "ever" if w == "ever" else f"in the last {w[:-1]} days"


def _count_text(value: Any, one: str, many: str, when: str) -> str:
    if _is_missing(value):
        return f"{many} {when}: unknown"
    v = float(value)
    if v == 0:
        return f"no {many} {when}"
    if v == 1:
        return f"1 {one} {when}"
    return f"{_number(v)} {many} {when}"


def _event_nouns(event: str) -> tuple[str, str]:
    if event in _EVENT_NOUNS:
        return _EVENT_NOUNS[event]
    one = event.replace("_", " ")
    return one, _plural(one)


def _plural(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("shes", "ches", "xes", "sses")):
        return word[:-2]
    return word[:-1]


def _singular_phrase(phrase: str) -> str:
    """``phrase`` with its leading plural noun made singular ("content touchpoints on ..."
    -> "content touchpoint on ...")."""
    head = _plural_head(phrase)
    if head is None:
        return phrase
    words = phrase.split()
    words[head] = _singular(words[head])
    return " ".join(words)


def _plural_head(definition: str) -> int | None:
    """Index of the plural noun the definition starts with, within its first two words
    ("contacts in the buying center", "economic buyers who left ..."), or None."""
    words = definition.split()
    for i, word in enumerate(words[:2]):
        if word in _STOP:
            return None
        if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            return i
    return None


def _label(key: str, definition: str, labels: Mapping[str, str]) -> str:
    if key in labels:
        return labels[key]
    # the label is the last quoted part ("... touchpoint's content 'Case study' in ...")
    parts = definition.rsplit("'", 2)
    if len(parts) == 3 and parts[1] and not parts[1].startswith("s "):
        return parts[1]
    return _capitalise(_humanise(key))


def _category_label(value: Any, labels: Mapping[str, str]) -> str:
    if _is_missing(value):
        return "unknown"
    text = str(value)
    return labels.get(text, _capitalise(_humanise(text)))


def _humanise(name: str) -> str:
    return " ".join(_ACRONYMS.get(w, w) for w in name.split("_"))


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def _is_category(value: Any) -> bool:
    return not isinstance(value, int | float | np.integer | np.floating | bool | np.bool_) and (
        not _is_missing(value)
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: numpy numbers become Python numbers, NaN/NA becomes None."""
    if _is_missing(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value if isinstance(value, int | float | bool) else str(value)


def _number(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.1f} million"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.1f}"


def _days(v: Any) -> str:
    d = float(v)
    if d < 1:
        return "less than 1 day"
    whole = int(math.floor(d))
    return "1 day" if whole == 1 else f"{whole:,} days"


def _fraction(v: float) -> str:
    for target, words in _FRACTIONS:
        if abs(v - target) < 1e-9:
            return words
    return f"{round(100 * v)} %"
