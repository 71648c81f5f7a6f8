"""Labels of the point-in-time training sets: they look only forward from each as-of date.

Pure functions on the input tables and a frame of ``(account_id, as_of)`` keys; each returns
one value per key row, aligned with the keys' row order. Features are computed from events
with ``ts < as_of``; labels from the CRM as it reads shortly after as-of (phase) or from events
in ``[as_of, as_of + horizon_days)`` (binary outcomes, purchase).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.errors import InvalidInputError
from features.taxonomy import Taxonomy

# The CRM records a phase change late (about two weeks in practice); the phase "at as-of" is
# read from the CRM as it stands this many days later.
PHASE_LABEL_LAG_DAYS = 14
CHURN_HORIZON_DAYS = 90
PURCHASE_WINDOW_DAYS = 90


class LabelError(InvalidInputError):
    """Inputs labels cannot be built from; the message names the table and column."""


def check_keys(keys: pd.DataFrame) -> None:
    missing = {"account_id", "as_of"} - set(keys.columns)
    if missing:
        raise LabelError(
            f"keys frame lacks columns {sorted(missing)}; expected account_id and as_of"
        )
    if not pd.api.types.is_datetime64_any_dtype(keys["as_of"]):
        raise LabelError(
            f"keys column 'as_of' has dtype {keys['as_of'].dtype}; expected datetime64[ns, UTC]"
        )


def _last_before(keys: pd.DataFrame, at: pd.Series, events: pd.DataFrame, value: str) -> pd.Series:
    """For each key row: ``value`` of the account's last event with ``ts < at`` (NaN if none).

    ``at`` is aligned with ``keys``. Returned Series is aligned with ``keys`` (same index).
    Times are compared as UTC ``datetime64[ns]`` (an empty table of events included).
    """
    # Accounts as codes among the keys' accounts, events of other accounts left out: the
    # touchpoints' ids as text were a GB at 100,000 accounts, at the phase step's peak.
    key_ids = keys["account_id"].astype(str)
    accounts = pd.Index(pd.unique(key_ids))
    event_account = accounts.get_indexer(pd.Index(events["account_id"].astype(str)))
    mine = event_account >= 0
    left = pd.DataFrame(
        {
            "_row": np.arange(len(keys)),
            "account_id": accounts.get_indexer(pd.Index(key_ids)),
            "_at": pd.to_datetime(at, utc=True).to_numpy(dtype="datetime64[ns]"),
        }
    ).sort_values("_at", kind="stable")
    right = pd.DataFrame(
        {
            "account_id": event_account[mine],
            "_ts": pd.to_datetime(events["ts"], utc=True).to_numpy(dtype="datetime64[ns]")[mine],
            "_value": events[value].to_numpy()[mine],
        }
    ).sort_values("_ts", kind="stable")
    # allow_exact_matches=False: strictly before, the same rule as the feature pipeline.
    merged = pd.merge_asof(
        left,
        right,
        left_on="_at",
        right_on="_ts",
        by="account_id",
        allow_exact_matches=False,
        direction="backward",
    )
    out = merged.sort_values("_row")["_value"].to_numpy()
    return pd.Series(out, index=keys.index)


def label_phase(
    stages: pd.DataFrame,
    keys: pd.DataFrame,
    taxonomy: Taxonomy,
    *,
    lag_days: int = PHASE_LABEL_LAG_DAYS,
) -> pd.Series:
    """The CRM-recorded phase of each key's account at its as-of date, read ``lag_days`` later:
    the phase of the account's last ``stages`` record with ``ts < as_of + lag_days``.

    Returns a categorical Series over the taxonomy's default phases, aligned with ``keys``;
    NaN where the CRM has no record for the account by then. Assumes canonical ``stages``
    (account_id, ts UTC, phase).
    """
    check_keys(keys)
    if lag_days < 0:
        raise LabelError(f"lag_days={lag_days}: expected 0 or more days")
    phases = pd.CategoricalDtype(taxonomy.phases)
    unknown = set(pd.Series(stages["phase"]).dropna().astype(str).unique()) - set(taxonomy.phases)
    if unknown:
        raise LabelError(
            f"stages column 'phase' holds {sorted(unknown)[:5]} not in the taxonomy's default "
            f"phases {taxonomy.phases}"
        )
    at = keys["as_of"] + pd.Timedelta(days=lag_days)
    values = _last_before(keys, at, stages.assign(phase=stages["phase"].astype(str)), "phase")
    return pd.Series(pd.Categorical(values, dtype=phases), index=keys.index, name="phase")


def _events_in_window(
    touchpoints: pd.DataFrame, keys: pd.DataFrame, event_type: str, window_days: int
) -> pd.Series:
    """1 where the key's account has a touchpoint of ``event_type`` in
    ``[as_of, as_of + window_days)``, else 0 (int8, aligned with ``keys``)."""
    return label_events(touchpoints, keys, [event_type], window_days=window_days)


def label_events(
    events: pd.DataFrame, keys: pd.DataFrame, event_types: Sequence[str], *, window_days: int
) -> pd.Series:
    """1 where the key's account has an event (a row of ``events``: account_id, ts,
    event_type) of one of ``event_types`` in ``[as_of, as_of + window_days)``, else 0
    (int8, aligned with ``keys``; ``as_of`` may differ per row)."""
    check_keys(keys)
    if window_days < 1:
        raise LabelError(f"window_days={window_days}: expected at least 1 day")
    chosen = events.loc[events["event_type"].isin(list(event_types)), ["account_id", "ts"]]
    return _first_in_window(chosen, keys, window_days)


def label_stage(
    stages: pd.DataFrame, keys: pd.DataFrame, phase: str, *, window_days: int
) -> pd.Series:
    """1 where the CRM records ``phase`` for the key's account in
    ``[as_of, as_of + window_days)``, else 0 (int8, aligned with ``keys``)."""
    check_keys(keys)
    if window_days < 1:
        raise LabelError(f"window_days={window_days}: expected at least 1 day")
    if stages.empty:
        return pd.Series(np.zeros(len(keys), dtype=np.int8), index=keys.index)
    chosen = stages.loc[stages["phase"].astype(str) == phase, ["account_id", "ts"]]
    return _first_in_window(chosen, keys, window_days)


def event_before(events: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """True where the key's account has a row of ``events`` (account_id, ts) with
    ``ts < as_of``; aligned with ``keys``."""
    check_keys(keys)
    if events.empty:
        return pd.Series(False, index=keys.index)
    last = _last_before(keys, keys["as_of"], events.assign(_seen=True), "_seen")
    return last.notna() & last.astype(bool)


def _first_in_window(events: pd.DataFrame, keys: pd.DataFrame, window_days: int) -> pd.Series:
    """1 where the key's account has a row of ``events`` (account_id, ts) in
    ``[as_of, as_of + window_days)``, else 0 (int8, aligned with ``keys``)."""
    # The first such event at or after as-of, then whether it falls inside the window.
    left = pd.DataFrame(
        {
            "_row": np.arange(len(keys)),
            "account_id": pd.array(keys["account_id"].astype(str).to_numpy(), dtype="str"),
            "_at": pd.to_datetime(keys["as_of"], utc=True).to_numpy(dtype="datetime64[ns]"),
        }
    ).sort_values("_at", kind="stable")
    right = pd.DataFrame(
        {
            "account_id": pd.array(events["account_id"].astype(str).to_numpy(), dtype="str"),
            "_ts": pd.to_datetime(events["ts"], utc=True).to_numpy(dtype="datetime64[ns]"),
        }
    ).sort_values("_ts", kind="stable")
    right["_hit"] = right["_ts"]
    merged = pd.merge_asof(
        left, right, left_on="_at", right_on="_ts", by="account_id", direction="forward"
    ).sort_values("_row")
    end = merged["_at"] + pd.Timedelta(days=window_days)
    hit = merged["_hit"].notna() & (merged["_hit"] < end)
    return pd.Series(hit.to_numpy().astype(np.int8), index=keys.index)


def label_purchase(
    touchpoints: pd.DataFrame, keys: pd.DataFrame, *, window_days: int = PURCHASE_WINDOW_DAYS
) -> pd.Series:
    """1 where the account has a purchase touchpoint in ``[as_of, as_of + window_days)``,
    else 0; int8 aligned with ``keys`` (the conversion the phase backtest counts)."""
    return _events_in_window(touchpoints, keys, "purchase", window_days).rename("purchased")


def last_content_phase(
    touchpoints: pd.DataFrame, content: pd.DataFrame, keys: pd.DataFrame, taxonomy: Taxonomy
) -> pd.Series:
    """The first phase listed by the content item of each account's last touchpoint with
    content before as-of (``ts < as_of``), as a categorical Series over the default phases
    aligned with ``keys``; NaN when the account had no content touchpoint yet.

    This is the "last-touchpoint-content" rule a marketing team uses without a model.
    """
    check_keys(keys)
    with_content = touchpoints.loc[
        touchpoints["content_id"].notna(), ["account_id", "ts", "content_id"]
    ]
    item_ids = content["content_id"].astype(str).to_numpy()
    first_phase = [list(p)[0] if len(p) else None for p in content["phases"]]  # small catalog
    item_phase = pd.Series(first_phase, index=item_ids, dtype=object)
    values = _last_before(keys, keys["as_of"], with_content, "content_id")
    phase = item_phase.reindex(pd.Series(values).astype(object).to_numpy()).to_numpy()
    dtype = pd.CategoricalDtype(taxonomy.phases)
    return pd.Series(pd.Categorical(phase, dtype=dtype), index=keys.index, name="phase")
