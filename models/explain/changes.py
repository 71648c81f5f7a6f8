"""What happened to an account since the last visit, in words: :func:`describe_changes`."""

from __future__ import annotations

from collections.abc import Mapping

from models.explain.words import event_nouns, number


def describe_changes(counts: Mapping[str, int]) -> str:
    """Returns the account's touchpoints by event type as a phrase ("2 downloads and 1
    registration"), the most frequent first (ties by name); "nothing new" when there are
    none. ``counts`` maps event type -> touchpoints; zero counts are left out."""
    given = sorted(((n, e) for e, n in counts.items() if n > 0), key=lambda x: (-x[0], x[1]))
    if not given:
        return "nothing new"
    parts = []
    for n, event in given:
        one, many = event_nouns(event)
        parts.append(f"1 {one}" if n == 1 else f"{number(n)} {many}")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]
