"""Hindsight phase labels: the phase an account was in at as-of, as the CRM history read
``hindsight_days`` later tells it.

A CRM records phase changes late, skips some and says nothing about most of the early
phases (many accounts get their first stage at the opportunity). A real company learns later
what it did not know at as-of, so a training label may look forward where a feature may
not. :func:`label_phase_hindsight` reconstructs each account's journey from its CRM records
and lifecycle events up to ``as_of + hindsight_days`` and reads the phase at as-of:

1. **Exact starts.** A record of the phase purchases lead to (the phase with the largest
   share of its records entered within ``2 x lag_days`` after a ``purchase`` touchpoint)
   started at that purchase; a record of the first phase started at a ``churn`` within that
   window before it; any other record started ``lag_days`` before it was entered.
2. **Stale phases.** A record of a buying phase (between the first phase and the one
   purchases lead to) older than that phase's usual time to the next record (the 90th
   percentile) is a deal lost without a record: the account is back in the first phase.
   The phase purchases lead to ends after that long too, in the phase its records are
   most often followed by (its successor's record was skipped).
3. **Back-fill.** When the next record jumps over phases (trigger -> selection: the CRM
   was silent about awareness and consideration; selection -> onboarding: purchase was
   skipped), the account went through them just before it: each skipped phase takes its
   median duration, counted back from the next record's start.

Durations (a gap between consecutive records of one account over k phases credits each a
k-th) are estimated from the records each label may read (those entered before ``as_of +
hindsight_days``), so a label uses nothing from after its window; which phase purchases lead
to is read from the whole history once (a fact of the CRM's process, not of an account's
future). Only phases in ``classes`` (the phases the CRM records, in journey order) are used.
The simulator's truth is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timestamps import NS_PER_DAY
from training.labels import LabelError, check_keys

# How far a hindsight label looks past as-of by default: long enough to see the opportunity
# most silent early phases lead to, short enough to purge few as-of dates between splits.
HINDSIGHT_DAYS = 60
LIFECYCLE_EVENTS = ("purchase", "churn")
# Fewer consecutive record pairs of a phase than this: its duration is the pooled median.
MIN_PAIRS = 20
STALE_QUANTILE = 0.9


@dataclass(frozen=True)
class Durations:
    """Per class code (nanoseconds): the median time in the phase (forward steps) and the
    stale limit (``STALE_QUANTILE`` of the time to any next record); the phase a record of it
    is most often followed by, the first phase aside (-1: none); and the class code purchases
    lead to (-1 when no record follows a purchase)."""

    median_ns: np.ndarray
    stale_ns: np.ndarray
    moves_to: np.ndarray
    after_purchase: int


def _lifecycle_records(
    stages: pd.DataFrame, touchpoints: pd.DataFrame, classes: list[str], lag_days: int
) -> pd.DataFrame:
    """The CRM records of ``classes`` (``account_id, ts, code``) with the lifecycle event
    (``_event``, ``_kind``) each was entered within ``2 x lag_days`` after, if any."""
    code = {name: i for i, name in enumerate(classes)}
    rec = pd.DataFrame(
        {
            "account_id": pd.array(stages["account_id"].astype(str).to_numpy(), dtype="str"),
            "ts": pd.to_datetime(stages["ts"], utc=True).to_numpy(dtype="datetime64[ns]"),
            "code": stages["phase"].astype(str).map(code).to_numpy(),
        }
    ).dropna(subset=["code"])
    rec["code"] = rec["code"].astype(np.int64)
    life = touchpoints.loc[
        touchpoints["event_type"].astype(str).isin(LIFECYCLE_EVENTS),
        ["account_id", "ts", "event_type"],
    ]
    events = pd.DataFrame(
        {
            "account_id": pd.array(life["account_id"].astype(str).to_numpy(), dtype="str"),
            "_event": pd.to_datetime(life["ts"], utc=True).to_numpy(dtype="datetime64[ns]"),
            "_kind": life["event_type"].astype(str).to_numpy(),
        }
    )
    return pd.merge_asof(
        rec.sort_values("ts", kind="stable"),
        events.sort_values("_event", kind="stable"),
        left_on="ts",
        right_on="_event",
        by="account_id",
        direction="backward",
        tolerance=pd.Timedelta(days=2 * lag_days),
    )


def purchase_evidence(
    stages: pd.DataFrame, touchpoints: pd.DataFrame, classes: list[str], lag_days: int
) -> np.ndarray:
    """Per class code: how many of its records were entered within ``2 x lag_days`` after a
    purchase (row 0) and how many records it has (row 1). Counts add up over accounts: the
    account ranges' evidence sums to the whole history's (:func:`after_purchase_of`)."""
    merged = _lifecycle_records(stages, touchpoints, classes, lag_days)
    kind = merged["_kind"].fillna("").astype(str).to_numpy()
    return _evidence(kind, merged["code"].to_numpy(), len(classes))


def _evidence(kind: np.ndarray, code_of: np.ndarray, n: int) -> np.ndarray:
    return np.stack(
        [np.bincount(code_of[kind == "purchase"], minlength=n), np.bincount(code_of, minlength=n)]
    )


def after_purchase_of(evidence: np.ndarray) -> int:
    """The class code with the largest share of its records entered within ``2 x lag_days``
    after a purchase, from :func:`purchase_evidence` (-1 when no record follows one)."""
    if evidence[0].sum() == 0:
        return -1
    return int(np.argmax(evidence[0] / np.maximum(evidence[1], 1)))


def _records(
    stages: pd.DataFrame,
    touchpoints: pd.DataFrame,
    classes: list[str],
    lag_days: int,
    after: int | None = None,
) -> pd.DataFrame:
    """The CRM records as ``account_id, ts, code, start, anchored`` (int64 ns; code into
    ``classes``; records of other phases dropped), sorted by account and start; ``anchored``
    names the lifecycle event a record's start was taken from ('' when none). ``after``: the
    class purchases lead to when read from more history than these tables' (every range's)."""
    merged = _lifecycle_records(stages, touchpoints, classes, lag_days)
    kind = merged["_kind"].fillna("").astype(str).to_numpy()
    code_of = merged["code"].to_numpy()
    # A churn starts the first phase; a purchase starts the phase most of whose records
    # follow one (the product journey's first: records of other phases entered soon after
    # a purchase, e.g. the purchase phase's own late record, did not start at it).
    if after is None:
        after = after_purchase_of(_evidence(kind, code_of, len(classes)))
    anchored = ((kind == "churn") & (code_of == 0)) | ((kind == "purchase") & (code_of == after))
    lagged = merged["ts"] - pd.Timedelta(days=lag_days)
    merged["start"] = merged["_event"].where(anchored, lagged)
    merged["anchored"] = np.where(anchored, kind, "")
    out = merged[["account_id", "ts", "code", "start", "anchored"]].copy()
    for column in ("ts", "start"):
        out[column] = out[column].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return out.sort_values(["account_id", "start"], kind="stable").reset_index(drop=True)


def duration_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """The consecutive record pairs of one account that change class (``records`` as
    :func:`_records` returns them): ``per_phase`` (ns credited to each phase of the gap),
    ``from_code``, ``to_code`` and ``forward``. Pairs never span two accounts, so the pairs
    of account ranges, concatenated, are those of the whole history."""
    same = records["account_id"].to_numpy()[1:] == records["account_id"].to_numpy()[:-1]
    code = records["code"].to_numpy()
    steps = code[1:] - code[:-1]
    moved = same & (steps != 0)
    # A record k followed by a record j > k: the account spent the gap in phases k .. j-1;
    # each is credited an equal share (most early phases have no record of their own). A
    # step back (a loss, a churn, a closed expansion) ends phase k after the whole gap.
    share = np.where(steps > 0, steps, 1)[moved]
    per_phase = (records["start"].to_numpy()[1:] - records["start"].to_numpy()[:-1])[moved] / share
    return pd.DataFrame(
        {
            "per_phase": per_phase,
            "from_code": code[:-1][moved],
            "to_code": code[1:][moved],
            "forward": steps[moved] > 0,
        }
    )


def estimate_durations(records: pd.DataFrame, n_classes: int) -> Durations:
    """Phase durations from consecutive records of one account that step one class forward
    (``records`` as :func:`_records` returns them); a phase with fewer than ``MIN_PAIRS``
    such pairs takes the pooled figures (30 days when there are none at all)."""
    purchased = records.loc[records["anchored"] == "purchase", "code"]
    after = int(purchased.iloc[0]) if len(purchased) else -1
    return durations_of(duration_pairs(records), n_classes, after)


def durations_of(pairs: pd.DataFrame, n_classes: int, after_purchase: int) -> Durations:
    """:func:`estimate_durations` from the record pairs (:func:`duration_pairs`) and the
    class code of the records started at a purchase (-1: none)."""
    per_phase = pairs["per_phase"].to_numpy(dtype=np.float64)
    from_code = pairs["from_code"].to_numpy()
    to_code = pairs["to_code"].to_numpy()
    forward = pairs["forward"].to_numpy(dtype=bool)
    median = np.full(n_classes, _quantile(per_phase[forward], 0.5, 30.0 * NS_PER_DAY))
    stale = np.full(n_classes, _quantile(per_phase, STALE_QUANTILE, 90.0 * NS_PER_DAY))
    moves_to = np.full(n_classes, -1)
    for k in range(n_classes):
        mine = from_code == k
        if (mine & forward).sum() >= MIN_PAIRS:
            median[k] = np.median(per_phase[mine & forward])
        if mine.sum() >= MIN_PAIRS:
            stale[k] = np.quantile(per_phase[mine], STALE_QUANTILE)
        onward = to_code[mine & (to_code > 0)]
        if len(onward):
            moves_to[k] = int(np.bincount(onward).argmax())
    return Durations(
        median_ns=median, stale_ns=stale, moves_to=moves_to, after_purchase=after_purchase
    )


def _quantile(values: np.ndarray, q: float, default: float) -> float:
    """The ``q`` quantile of ``values``, ``default`` when there are none."""
    return float(np.quantile(values, q)) if len(values) else default


def _around(keys: pd.DataFrame, records: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Per key row: ``code`` and ``start`` of the account's last record started at or before
    as-of (``direction='backward'``) or first one started after it (``'forward'``); -1 / 0
    where there is none. Aligned with ``keys`` by position."""
    left = pd.DataFrame(
        {
            "_row": np.arange(len(keys)),
            "account_id": pd.array(keys["account_id"].astype(str).to_numpy(), dtype="str"),
            "_at": pd.to_datetime(keys["as_of"], utc=True)
            .to_numpy(dtype="datetime64[ns]")
            .astype(np.int64),
        }
    ).sort_values("_at", kind="stable")
    right = records[["account_id", "start", "code"]].sort_values("start", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="_at",
        right_on="start",
        by="account_id",
        direction=direction,  # type: ignore[arg-type]
        allow_exact_matches=direction == "backward",
    ).sort_values("_row")
    return pd.DataFrame(
        {
            "code": merged["code"].fillna(-1).to_numpy(dtype=np.int64),
            "start": merged["start"].fillna(0).to_numpy(dtype=np.int64),
        }
    )


def _phase_at(keys: pd.DataFrame, records: pd.DataFrame, durations: Durations) -> np.ndarray:
    """Class codes of the hindsight phase at each key's as-of from ``records`` (those its
    label may read); -1 where the account has no record at all."""
    at = pd.to_datetime(keys["as_of"], utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    now, nxt = _around(keys, records, "backward"), _around(keys, records, "forward")
    code = now["code"].to_numpy().copy()
    buying = (code > 0) & (code < durations.after_purchase)
    age = at - now["start"].to_numpy()
    stale = (code >= 0) & (age > durations.stale_ns[np.maximum(code, 0)])
    # A buying phase outstaying its usual time was lost without a record; the phase a
    # purchase starts (onboarding) ends, and its successor's record was skipped.
    onward = durations.moves_to[np.maximum(code, 0)]
    started = (code == durations.after_purchase) & (code >= 0)
    code = np.where(stale & buying, 0, np.where(stale & started & (onward > 0), onward, code))
    # Before its first record an account with a later record was in the first phase.
    code[(code < 0) & (nxt["code"].to_numpy() >= 0)] = 0
    label = code.copy()
    target, until = nxt["code"].to_numpy(), nxt["start"].to_numpy() - at
    skipped = (target > code + 1) & (code >= 0)
    cumulative = np.zeros(len(code))
    decided = ~skipped
    for back in range(1, len(durations.median_ns)):
        phase = target - back
        active = ~decided & (phase > code)
        cumulative = cumulative + np.where(active, durations.median_ns[np.maximum(phase, 0)], 0)
        hit = active & (until <= cumulative)
        label[hit] = phase[hit]
        decided |= hit | ~active
    return label


@dataclass(frozen=True)
class HindsightStats:
    """What hindsight labels read from every account's history, given to the labels of one
    account range at a time: the class code purchases lead to and, per as-of date, the
    durations estimated from the records its labels may read."""

    after_purchase: int
    durations: dict[pd.Timestamp, Durations]


def label_phase_hindsight(
    stages: pd.DataFrame,
    touchpoints: pd.DataFrame,
    keys: pd.DataFrame,
    classes: list[str],
    *,
    lag_days: int,
    hindsight_days: int = HINDSIGHT_DAYS,
    stats: HindsightStats | None = None,
) -> np.ndarray:
    """Class codes (into ``classes``, journey order) of each key's hindsight phase at as-of,
    reconstructed from the CRM records entered before ``as_of + hindsight_days`` and the
    purchase and churn touchpoints (module docstring); -1 where the account has no record in
    that window. Aligned with ``keys`` by position. Assumes canonical ``stages`` (account_id,
    ts UTC, phase) and ``touchpoints`` (account_id, ts, event_type). ``stats``: the population
    figures of a larger history (every account range's), else read from these tables."""
    check_keys(keys)
    if lag_days < 0 or hindsight_days < 0:
        raise LabelError(
            f"lag_days={lag_days}, hindsight_days={hindsight_days}: expected 0 or more days"
        )
    out = np.full(len(keys), -1, dtype=np.int64)
    if stages.empty:
        return out
    after = None if stats is None else stats.after_purchase
    records = _records(stages, touchpoints, classes, lag_days, after)
    as_of = pd.to_datetime(keys["as_of"], utc=True)
    for date in as_of.unique():
        cut = (pd.Timestamp(date) + pd.Timedelta(days=hindsight_days)).as_unit("ns")
        readable = records[records["ts"] < cut.value]
        rows = np.nonzero((as_of == date).to_numpy())[0]
        durations = (
            estimate_durations(readable, len(classes))
            if stats is None
            else stats.durations[pd.Timestamp(date)]
        )
        out[rows] = _phase_at(keys.iloc[rows], readable, durations)
    return out


def readable_pairs(
    stages: pd.DataFrame,
    touchpoints: pd.DataFrame,
    classes: list[str],
    dates: list[pd.Timestamp],
    *,
    lag_days: int,
    after_purchase: int,
    hindsight_days: int = HINDSIGHT_DAYS,
) -> dict[pd.Timestamp, tuple[pd.DataFrame, bool]]:
    """Per as-of date: the record pairs (:func:`duration_pairs`) its labels may read and
    whether one of those records started at a purchase, for one account range
    (:func:`hindsight_stats` puts the ranges together)."""
    records = _records(stages, touchpoints, classes, lag_days, after_purchase)
    out = {}
    for date in dates:
        cut = (pd.Timestamp(date) + pd.Timedelta(days=hindsight_days)).as_unit("ns")
        readable = records[records["ts"] < cut.value]
        anchored = bool((readable["anchored"] == "purchase").any())
        out[pd.Timestamp(date)] = (duration_pairs(readable), anchored)
    return out


def hindsight_stats(
    after_purchase: int,
    n_classes: int,
    ranges: list[dict[pd.Timestamp, tuple[pd.DataFrame, bool]]],
) -> HindsightStats:
    """What :func:`label_phase_hindsight` reads from the whole history, from every account
    range's :func:`readable_pairs`."""
    durations = {}
    for date in ranges[0] if ranges else {}:
        pairs = pd.concat([r[date][0] for r in ranges], ignore_index=True)
        anchored = any(r[date][1] for r in ranges)
        durations[date] = durations_of(pairs, n_classes, after_purchase if anchored else -1)
    return HindsightStats(after_purchase, durations)
