"""Touchpoint counts and sums in time windows before an as-of date, and recency.

Every touchpoint has a window bucket (7/30/60/90/365 days before the as-of date) and a
category code per vocabulary; one ``numpy.bincount`` per vocabulary yields all windowed
counts at once, and a cumulative sum over buckets turns them into "within the last w days".
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from features.pipeline.prepare import PreparedEvents, TouchpointWindow
from features.pipeline.specs import EDGES_DAYS, ENGAGEMENT_WINDOW_DAYS, VOCABULARIES, WINDOWS_DAYS
from features.schema import RESPONSE_EVENT_TYPES
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY

_WINDOW_INDEX = [EDGES_DAYS.index(w) for w in WINDOWS_DAYS]
_VOCABULARY_NAMES = {prefix: vocabulary for prefix, vocabulary, _ in VOCABULARIES}


def touchpoint_counts(window: TouchpointWindow) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(``n_touchpoints_<w>d`` features, (n_edges, n_accounts) cumulative counts)."""
    n = window.n_accounts
    n_edges = len(EDGES_DAYS)
    # As in _windowed_counts: the bin index in place, older touchpoints to one extra bin.
    flat = window.bucket.astype(np.int64)
    flat *= n
    flat += window.account
    flat[window.bucket >= n_edges] = n * n_edges
    total = _cumulative(np.bincount(flat, minlength=n * n_edges + 1)[: n * n_edges], n_edges)
    out = {
        f"n_touchpoints_{w}d": total[j] for w, j in zip(WINDOWS_DAYS, _WINDOW_INDEX, strict=True)
    }
    return out, total


def vocabulary_features(
    window: TouchpointWindow, prep: PreparedEvents, taxonomy: Taxonomy
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(windowed counts and days since last per vocabulary value, the event-type counts).

    The event-type counts are (n_edges, n_accounts, n_event_types), cumulative over edges.
    """

    def one(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return _vocabulary_counts(window, prep, prefix, taxonomy)

    # numpy releases the GIL in these array passes: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        computed = dict(zip(_VOCABULARY_NAMES, pool.map(one, _VOCABULARY_NAMES), strict=True))
    out: dict[str, np.ndarray] = {}
    for prefix, (counts, recency) in computed.items():
        for i, value in enumerate(taxonomy.vocabulary(_VOCABULARY_NAMES[prefix])):
            for w, j in zip(WINDOWS_DAYS, _WINDOW_INDEX, strict=True):
                out[f"n_{prefix}_{value}_{w}d"] = counts[j, :, i]
            out[f"days_since_{prefix}_{value}"] = recency[:, i]
    event_counts, _ = computed["event"]
    return out, event_counts


def _vocabulary_counts(
    window: TouchpointWindow, prep: PreparedEvents, prefix: str, taxonomy: Taxonomy
) -> tuple[np.ndarray, np.ndarray]:
    """(windowed counts, days since last) of one vocabulary."""
    n = window.n_accounts
    if prefix == "content_phase":
        return _phase_counts(window, prep)
    account, bucket, ns = window.account, window.bucket, window.ns
    codes = window.event if prefix == "event" else prep.tp_codes[prefix][window.rows]
    n_values = len(taxonomy.vocabulary(_VOCABULARY_NAMES[prefix]))
    counts = _windowed_counts(account, bucket, codes, n, n_values)
    return counts, days_since_last(account, codes, ns, window.as_of_ns, n, n_values)


def _phase_counts(window: TouchpointWindow, prep: PreparedEvents) -> tuple[np.ndarray, np.ndarray]:
    """(windowed counts, days since last) per content phase: a touchpoint counts once for
    every phase its content fits. One phase at a time, so the temporaries are those of the
    touchpoints fitting one phase (all phases' at once were the largest of the pipeline)."""
    n = window.n_accounts
    n_phases = prep.tp_phase_fit.shape[1]
    counts = np.zeros((len(EDGES_DAYS), n, n_phases), dtype=np.int64)
    recency = np.full((n, n_phases), np.nan)
    for p in range(n_phases):
        fits = np.flatnonzero(prep.tp_phase_fit[window.rows, p])
        account = window.account[fits]
        none = np.zeros(len(fits), dtype=np.int64)
        counts[:, :, p] = _windowed_counts(account, window.bucket[fits], none, n, 1)[:, :, 0]
        ns = window.ns[fits]
        recency[:, p] = days_since_last(account, none, ns, window.as_of_ns, n, 1)[:, 0]
    return counts, recency


def _windowed_counts(
    account: np.ndarray, bucket: np.ndarray, codes: np.ndarray, n_accounts: int, n_codes: int
) -> np.ndarray:
    """(n_edges, n_accounts, n_codes) cumulative counts: [j] = events within edge j;
    events older than the last edge (bucket ``len(EDGES_DAYS)``) or without a code (-1)
    are not counted.

    Edges first, so the cumulative sum adds whole contiguous blocks. The bin index is built
    in place in one array, and uncounted events go to one extra bin: no filtered copies of
    the inputs (at 10M touchpoints each copy is 80 MB of fresh pages).
    """
    n_edges = len(EDGES_DAYS)
    size = n_accounts * n_codes * n_edges
    flat = bucket.astype(np.int64)
    flat *= n_accounts
    flat += account
    flat *= n_codes
    flat += codes
    flat[(codes < 0) | (bucket >= n_edges)] = size
    counts = np.bincount(flat, minlength=size + 1)[:size]
    del flat
    return _cumulative(counts, n_edges).reshape(n_edges, n_accounts, n_codes)


def _cumulative(counts: np.ndarray, n_edges: int) -> np.ndarray:
    """``counts`` as (n_edges, -1) blocks, each block summed with all before it, in place:
    ``cumsum`` would allocate a second array as large (150 MB per vocabulary at 100,000
    accounts, two vocabularies at a time)."""
    blocks = counts.reshape(n_edges, -1)
    for j in range(1, n_edges):
        blocks[j] += blocks[j - 1]
    return blocks


def days_since_last(
    account: np.ndarray,
    codes: np.ndarray,
    ns: np.ndarray,
    as_of_ns: int,
    n_accounts: int,
    n_codes: int,
) -> np.ndarray:
    """(n_accounts, n_codes) days since the last event per code; NaN if none."""
    size = n_accounts * n_codes
    key = account * n_codes
    key += codes
    key[codes < 0] = size  # one extra slot for events without a code: no filtered copies
    last = np.full(size + 1, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, key, ns)
    last = last[:size]
    days = (as_of_ns - last) / NS_PER_DAY
    days[last == np.iinfo(np.int64).min] = np.nan
    return days.reshape(n_accounts, n_codes)


def trend_features(
    total: np.ndarray, events: np.ndarray, taxonomy: Taxonomy
) -> dict[str, np.ndarray]:
    """Last 30 days minus the 30 before, of touchpoints, engagement, tickets and usage.

    ``total`` and ``events`` are the cumulative counts of :func:`touchpoint_counts` and
    :func:`vocabulary_features`.
    """
    j30, j60 = EDGES_DAYS.index(30), EDGES_DAYS.index(60)
    names = taxonomy.event_type_names
    engagement = [i for i, e in enumerate(names) if e in RESPONSE_EVENT_TYPES]

    def trend(c: np.ndarray) -> np.ndarray:
        return (2 * c[j30] - c[j60]).astype(np.float64)

    def event_trend(event: str) -> np.ndarray:
        if event not in names:
            return np.zeros(events.shape[1])
        return trend(events[:, :, names.index(event)])

    return {
        "trend_touchpoints_30d": trend(total),
        "trend_engagement_30d": trend(events[:, :, engagement].sum(axis=2)),
        "trend_support_tickets_30d": event_trend("support_ticket"),
        "trend_usage_30d": event_trend("usage"),
    }


def lifecycle_features(
    window: TouchpointWindow, by_vocabulary: dict[str, np.ndarray], taxonomy: Taxonomy
) -> dict[str, np.ndarray]:
    """First and last touch, purchases and churns ever, and whether a customer now.

    ``by_vocabulary`` holds the features of :func:`vocabulary_features`; whether an account
    is a customer compares its ``days_since_event_purchase`` and ``days_since_event_churn``.
    """
    n = window.n_accounts
    account, ns = window.account, window.ns
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, account, ns)
    out: dict[str, np.ndarray] = {}
    out["days_since_first_touch"] = np.where(
        first == np.iinfo(np.int64).max, np.nan, (window.as_of_ns - first) / NS_PER_DAY
    )
    out["days_since_last_touch"] = days_since_last(
        account, np.zeros_like(account), ns, window.as_of_ns, n, 1
    )[:, 0]
    event_codes = window.event
    names = taxonomy.event_type_names

    def count_ever(event: str) -> np.ndarray:
        if event not in names:
            return np.zeros(n, dtype=np.int64)
        return np.bincount(account[event_codes == names.index(event)], minlength=n)

    out["n_purchases"] = count_ever("purchase")
    out["n_churns"] = count_ever("churn")
    nan = np.full(n, np.nan)
    purchase_days = np.asarray(
        by_vocabulary.get("days_since_event_purchase", nan), dtype=np.float64
    )
    churn_days = np.asarray(by_vocabulary.get("days_since_event_churn", nan), dtype=np.float64)
    out["is_customer"] = (
        ~np.isnan(purchase_days) & (np.isnan(churn_days) | (churn_days > purchase_days))
    ).astype(np.int64)
    return out


def value_features(
    window: TouchpointWindow, prep: PreparedEvents, taxonomy: Taxonomy
) -> dict[str, np.ndarray]:
    """Dwell minutes (views, attendances) in the engagement window and revenue in a year."""
    n = window.n_accounts
    e = ENGAGEMENT_WINDOW_DAYS
    names = taxonomy.event_type_names
    account, age_ns = window.account, window.age_ns
    event = window.event
    value = prep.tp_value[window.rows]
    recent = age_ns <= e * NS_PER_DAY
    dwell_types = [names.index(x) for x in ("view", "attend") if x in names]
    dwell = recent & np.isin(event, dwell_types) & ~np.isnan(value)
    minutes = np.bincount(account[dwell], weights=value[dwell], minlength=n)
    n_dwell = np.bincount(account[dwell], minlength=n)
    money_types = [names.index(x) for x in ("purchase", "renewal") if x in names]
    money = (age_ns <= 365 * NS_PER_DAY) & np.isin(event, money_types) & ~np.isnan(value)
    return {
        f"dwell_minutes_{e}d": minutes,
        f"mean_dwell_minutes_{e}d": np.where(n_dwell > 0, minutes / np.maximum(n_dwell, 1), np.nan),
        "revenue_365d": np.bincount(account[money], weights=value[money], minlength=n),
    }
