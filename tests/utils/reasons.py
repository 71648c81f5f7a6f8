"""What a reason written for a rep must not contain: a bare feature name (a catalogue name
such as ``n_exposures_90d``, or one as words used as a label, "Content item: ...") or a raw
zero count ("...: 0", "0 touchpoints")."""

from __future__ import annotations

import re
from collections.abc import Iterable

from models.explain.words import humanise

# A zero standing alone: not part of a larger number (10, 2,000, 0.5).
_RAW_ZERO = re.compile(r"(?<![\d.,])0(?![\d.,])")


def reason_problems(text: str, feature_names: Iterable[str]) -> list[str]:
    """Why ``text`` is not written for a rep (empty when it is)."""
    problems: list[str] = []
    if _RAW_ZERO.search(text):
        problems.append("a raw zero")
    lowered = text.lower()
    for name in feature_names:
        if "_" in name and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            problems.append(f"the feature name {name}")
        if lowered.startswith(humanise(name).lower() + ":"):
            problems.append(f"the feature name {name} as a label")
    return problems
