"""Reason codes: the features that push one row's output in the explained direction,
strongest first, each with its sentence."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.taxonomy import Taxonomy
from models.explain.errors import ExplainError
from models.explain.phrasing import describe
from models.explain.words import category_label, is_missing


@dataclass(frozen=True)
class Reason:
    """One reason code: the feature, its value for the row, its contribution to the raw
    score (log-odds for binary models) and the sentence shown to people."""

    feature: str
    value: Any
    contribution: float
    text: str


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


# The feature name of the reason an explored action carries (not a model feature).
EXPLORATION = "exploration"


def exploration_reason(rate: float, n_eligible: int) -> Reason:
    """The reason of an action exploration drew at random: it was not chosen for what the
    model says about it, so the model's contributions would not say why it is there."""
    share = f"{rate * 100:.3g} %"
    among = f"the {n_eligible} eligible actions" if n_eligible > 1 else "the eligible actions"
    return Reason(
        feature=EXPLORATION,
        value=float(rate),
        contribution=0.0,
        text=(
            f"picked at random among {among} to learn what works: {share} of answers "
            "explore, the others serve the best expected value"
        ),
    )


# Phrases of candidate-feature sentences that the row itself can name ("the item's topic"
# -> "Security", "the contact's role" -> "the IT role"): a rep reads which, not a reference.
_ITEM_PHRASES = {"the item's topic": "content_topic", "the contact's role": "contact_role"}


def _name_the_item(
    text: str, values: Mapping[str, Any] | pd.Series, labels: Mapping[str, str]
) -> str:
    for phrase, column in _ITEM_PHRASES.items():
        if phrase in text:
            value = values.get(column, None)
            if not is_missing(value):
                label = category_label(value, labels)
                text = text.replace(
                    phrase, label if column == "content_topic" else f"the {label} role"
                )
    return text


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: numpy numbers become Python numbers, NaN/NA becomes None."""
    if is_missing(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value if isinstance(value, int | float | bool) else str(value)


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
