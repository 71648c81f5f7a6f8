"""Responses to exposures: which shown content got an answer, and the exposure features.

A response to an exposure is a touchpoint of the same account and content, of a response
event type, at or after the exposure and within ``RESPONSE_WINDOW_DAYS``
(``features.schema``). Matching is done once per data set (it does not depend on the as-of
date); each as-of date then only compares times.
"""

from __future__ import annotations

import numpy as np

from features.pipeline.specs import ENGAGEMENT_WINDOW_DAYS, FeatureError
from features.schema import RESPONSE_EVENT_TYPES, RESPONSE_WINDOW_DAYS
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY

# "No response": later than any as-of date.
NO_TIME = np.iinfo(np.int64).max


def first_response_ns(
    exp_account: np.ndarray,
    exp_content: np.ndarray,
    exp_ns: np.ndarray,
    tp_account: np.ndarray,
    tp_content: np.ndarray,
    tp_ns: np.ndarray,
    tp_event: np.ndarray,
    taxonomy: Taxonomy,
) -> np.ndarray:
    """For each exposure, the time of its first response; ``NO_TIME`` where there is none.

    Assumes integer codes (-1: unknown) for accounts, content and event types and
    nanosecond times; neither side needs to be sorted.
    """
    n_content = int(max(exp_content.max(initial=0), tp_content.max(initial=0))) + 1
    response_types = [
        taxonomy.event_type_names.index(e)
        for e in RESPONSE_EVENT_TYPES
        if e in taxonomy.event_type_names
    ]
    is_response = (tp_content >= 0) & (tp_account >= 0) & np.isin(tp_event, response_types)
    out = np.full(len(exp_ns), NO_TIME, dtype=np.int64)
    shown = np.flatnonzero((exp_account >= 0) & (exp_content >= 0))
    if not len(shown) or not is_response.any():
        return out
    r_key = tp_account[is_response] * n_content + tp_content[is_response]
    r_ns = tp_ns[is_response]
    e_key = exp_account[shown] * n_content + exp_content[shown]
    e_ns = exp_ns[shown]
    # One sortable int64 per event: key * span + time since the first event, in the finest
    # unit that cannot overflow. Sorted needles make searchsorted one pass over the haystack.
    base = min(int(r_ns.min()), int(e_ns.min()))
    n_keys = int(max(r_key.max(), e_key.max())) + 1
    unit, span = _time_unit(r_ns, e_ns, base, n_keys)
    r_composite = r_key * span + (r_ns - base) // unit
    r_order = np.argsort(r_composite)
    needle = e_key * span + (e_ns - base) // unit
    found, response_ns = _next_response(
        r_composite[r_order], r_ns[r_order], needle, e_key, e_ns, span
    )
    hit = found & (response_ns - e_ns <= RESPONSE_WINDOW_DAYS * NS_PER_DAY)
    out[shown[hit]] = response_ns[hit]
    return out


def _time_unit(r_ns: np.ndarray, e_ns: np.ndarray, base: int, n_keys: int) -> tuple[int, int]:
    """(unit, span): the finest time unit in ns whose ``n_keys * span`` fits in an int64
    with room to spare, and the number of such units between the first and last event."""
    for unit in (10**6, 10**9, 60 * 10**9):
        span = (max(int(r_ns.max()), int(e_ns.max())) - base) // unit + 1
        if span * n_keys < np.iinfo(np.int64).max // 2:
            return unit, span
    raise FeatureError(
        f"{n_keys:,} account-content pairs are too many to match responses in one "
        "partition; use --engine dask"
    )


def _next_response(
    haystack: np.ndarray,
    r_ns_sorted: np.ndarray,
    needle: np.ndarray,
    e_key: np.ndarray,
    e_ns: np.ndarray,
    span: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(found, time) of each exposure's first response of the same key at or after it.

    ``haystack`` holds the sorted composite keys of the responses and ``r_ns_sorted`` their
    times in the same order; ``time`` is meaningful only where ``found``.
    """
    needle_order = np.argsort(needle)
    pos = np.empty(len(needle), dtype=np.int64)
    pos[needle_order] = np.searchsorted(haystack, needle[needle_order], side="left")
    last = len(haystack) - 1

    def same_key(p: np.ndarray) -> np.ndarray:
        return (p <= last) & (haystack[np.minimum(p, last)] // span == e_key)

    # Responses within one time unit (1 ms at most scales) may come in any order; the
    # "first" response is then exact only to that unit, which no as-of date can tell apart.
    # A response in the same time unit but earlier than the exposure is not an answer to it.
    while True:
        early = same_key(pos) & (r_ns_sorted[np.minimum(pos, last)] < e_ns)
        if not early.any():
            break
        pos[early] += 1
    found = same_key(pos)
    return found, r_ns_sorted[np.minimum(pos, last)]


def exposure_features(
    exp_account: np.ndarray,
    exp_ns: np.ndarray,
    exp_response_ns: np.ndarray,
    as_of_ns: int,
    n_accounts: int,
) -> dict[str, np.ndarray]:
    """Exposures, responses and response rate per account in the engagement window.

    Assumes account codes (-1: unknown) and the first-response times of
    :func:`first_response_ns`.
    """
    e = ENGAGEMENT_WINDOW_DAYS
    shown = (exp_ns < as_of_ns) & (exp_ns >= as_of_ns - e * NS_PER_DAY) & (exp_account >= 0)
    n_shown = np.bincount(exp_account[shown], minlength=n_accounts)
    # A response counts only if it happened before as-of: later ones are not yet known.
    responded = shown & (exp_response_ns < as_of_ns)
    n_responded = np.bincount(exp_account[responded], minlength=n_accounts)
    return {
        f"n_exposures_{e}d": n_shown,
        f"n_responses_{e}d": n_responded,
        f"response_rate_{e}d": np.where(n_shown > 0, n_responded / np.maximum(n_shown, 1), np.nan),
    }
