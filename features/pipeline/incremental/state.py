"""One account's feature state: its events as integer arrays, updated as events arrive.

:class:`FeatureState` holds what the features of one account at any later as-of date need
(``features.pipeline.incremental.derive`` computes them): the account row, its contacts and
CRM stages, its touchpoints and exposures as codes and nanosecond times, and, for the
events folded away (older than every window at the as-of dates still to come, see
:func:`fold`), the few aggregates the features read of them (last time per channel, event
type, contact and content item; first and last touch; counts per event type and content
item; first activity). New events are added (:func:`add_touchpoints`) in any order and at
any time: a late event older than the fold point is folded on arrival.

Codes of channels, event types and phases are taxonomy positions (the state records the
vocabularies, :func:`vocabulary_key`); contacts and content items are positions in the
state's own id lists, so a contact's role or an item's type, phases and topic are read
from the contacts and the catalog when features are derived (a role given later applies
to the account's earlier touchpoints, as in the batch pipeline).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from features.pipeline.prepare import category_codes
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns

# Times that are not there: unknown (a contact's creation), never (a contact who has not
# left, an aggregate over no events).
NEVER = int(np.iinfo(np.int64).min)
NOT_LEFT = int(np.iinfo(np.int64).max)
# Events older than every window at as-of dates from the fold point on (the longest
# window is 365 days; touchpoints at exactly 365 days still count).
HORIZON_NS = 365 * NS_PER_DAY
# Serving folds events older than this before "now", so a state stays valid for a day of
# requests behind the time it was updated at.
KEEP_DAYS = 366
_ACCOUNT_FIELDS = ("employees", "annual_revenue", "industry", "region", "created_at")


def vocabulary_key(taxonomy: Taxonomy) -> str:
    """A short hash of the vocabularies whose positions the state's codes are."""
    parts = [taxonomy.channel_names, taxonomy.event_type_names, list(taxonomy.phases)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def int_array(n: int = 0, fill: int = NEVER) -> np.ndarray:
    return np.full(n, fill, dtype=np.int64)


@dataclass
class Folded:
    """Aggregates of the touchpoints and exposures before ``before_ns`` (none: NEVER)."""

    before_ns: int = NEVER
    first_touch_ns: int = int(np.iinfo(np.int64).max)
    last_touch_ns: int = NEVER
    first_activity_ns: int = int(np.iinfo(np.int64).max)
    channel_last: np.ndarray = field(default_factory=int_array)
    event_last: np.ndarray = field(default_factory=int_array)
    event_count: np.ndarray = field(default_factory=int_array)
    contact_last: np.ndarray = field(default_factory=int_array)  # per state contact
    content_last: np.ndarray = field(default_factory=int_array)  # per state content id
    content_count: np.ndarray = field(default_factory=int_array)


@dataclass
class FeatureState:
    """One account's feature state (see the module docstring). Arrays are parallel per
    table; ``-1`` is "none" for codes and positions."""

    account_id: str
    vocabulary: str  # :func:`vocabulary_key` of the taxonomy the codes belong to
    # The account row: firmographics (None/NaN when unknown), created_at in ns (None: at
    # its first activity) and custom attribute values.
    account: dict[str, Any]
    contact_ids: list[str]
    contact_role: list[str | None]
    contact_created_ns: np.ndarray  # NEVER: unknown (never counted present)
    contact_left_ns: np.ndarray  # NOT_LEFT: still there
    contact_listed: np.ndarray  # bool: a row of the contacts table (else only named)
    content_ids: list[str]
    tp_ns: np.ndarray
    tp_channel: np.ndarray
    tp_event: np.ndarray
    tp_contact: np.ndarray
    tp_content: np.ndarray
    tp_value: np.ndarray
    exp_ns: np.ndarray
    exp_content: np.ndarray
    stage_ns: np.ndarray
    stage_phase: np.ndarray
    folded: Folded


def empty_state(account_id: str, taxonomy: Taxonomy) -> FeatureState:
    """The state of an account nothing is known about yet."""
    n_ch, n_ev = len(taxonomy.channel_names), len(taxonomy.event_type_names)
    return FeatureState(
        account_id=account_id,
        vocabulary=vocabulary_key(taxonomy),
        account={},
        contact_ids=[],
        contact_role=[],
        contact_created_ns=int_array(),
        contact_left_ns=int_array(),
        contact_listed=np.zeros(0, dtype=bool),
        content_ids=[],
        tp_ns=int_array(),
        tp_channel=int_array(),
        tp_event=int_array(),
        tp_contact=int_array(),
        tp_content=int_array(),
        tp_value=np.zeros(0, dtype=np.float64),
        exp_ns=int_array(),
        exp_content=int_array(),
        stage_ns=int_array(),
        stage_phase=int_array(),
        folded=Folded(
            channel_last=int_array(n_ch), event_last=int_array(n_ev), event_count=int_array(n_ev, 0)
        ),
    )


def with_account(state: FeatureState, record: dict[str, Any]) -> FeatureState:
    """``state`` with the account row ``record`` (a canonical accounts row as a dict)."""
    account: dict[str, Any] = {}
    for name, value in record.items():
        if name == "account_id":
            continue
        if name == "created_at":
            account[name] = None if pd.isna(value) else int(pd.Timestamp(value).value)
        else:
            account[name] = None if _missing(value) else _plain(value)
    return replace(state, account=account)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, (list, tuple, dict)) and bool(pd.isna(value)))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def with_contacts(state: FeatureState, contacts: pd.DataFrame) -> FeatureState:
    """``state`` with the account's rows of the contacts table (replacing those it had;
    contacts only named by touchpoints stay, unlisted)."""
    ids = contacts["contact_id"].astype(str).tolist()
    roles = [None if _missing(r) else str(r) for r in contacts["role"].astype(object).tolist()]
    created = column_ns(contacts["created_at"]) if len(contacts) else int_array()
    left = (
        column_ns(contacts["left_at"]) if "left_at" in contacts and len(contacts) else int_array(0)
    )
    if len(left) != len(ids):
        left = int_array(len(ids), NOT_LEFT)
    left = np.where(left == NEVER, NOT_LEFT, left)
    # copies: a state may be shared (a cache), so it is never changed in place
    out = replace(
        state,
        contact_role=list(state.contact_role),
        contact_created_ns=state.contact_created_ns.copy(),
        contact_left_ns=state.contact_left_ns.copy(),
        contact_listed=state.contact_listed.copy(),
    )
    for j, contact_id in enumerate(ids):
        out, at = _contact_position(out, contact_id)
        out.contact_role[at] = roles[j]
        out.contact_created_ns[at] = created[j]
        out.contact_left_ns[at] = left[j]
        out.contact_listed[at] = True
    return out


def _contact_position(state: FeatureState, contact_id: str) -> tuple[FeatureState, int]:
    """(state, position of ``contact_id``), the contact added unlisted if new."""
    if contact_id in state.contact_ids:
        return state, state.contact_ids.index(contact_id)
    n = len(state.contact_ids)
    state = replace(
        state,
        contact_ids=[*state.contact_ids, contact_id],
        contact_role=[*state.contact_role, None],
        contact_created_ns=np.append(state.contact_created_ns, NEVER),
        contact_left_ns=np.append(state.contact_left_ns, NOT_LEFT),
        contact_listed=np.append(state.contact_listed, False),
        folded=replace(state.folded, contact_last=np.append(state.folded.contact_last, NEVER)),
    )
    return state, n


def _content_positions(
    state: FeatureState, ids: list[str | None]
) -> tuple[FeatureState, np.ndarray]:
    """(state, position of each content id; -1 for None), new ids appended."""
    known = {c: i for i, c in enumerate(state.content_ids)}
    new = [c for c in dict.fromkeys(i for i in ids if i is not None) if c not in known]
    if new:
        folded = state.folded
        state = replace(
            state,
            content_ids=[*state.content_ids, *new],
            folded=replace(
                folded,
                content_last=np.append(folded.content_last, int_array(len(new))),
                content_count=np.append(folded.content_count, int_array(len(new), 0)),
            ),
        )
        known.update({c: len(known) + k for k, c in enumerate(new)})
    return state, np.array([-1 if i is None else known[i] for i in ids], dtype=np.int64)


def id_list(column: pd.Series) -> list[str | None]:
    return [None if _missing(v) else str(v) for v in column.astype(object).tolist()]


def add_touchpoints(state: FeatureState, rows: pd.DataFrame, taxonomy: Taxonomy) -> FeatureState:
    """``state`` with the touchpoints ``rows`` (canonical columns; any order, any time)
    added; those before the fold point are folded at once."""
    if rows.empty:
        return state
    contact_ids = id_list(rows["contact_id"]) if "contact_id" in rows else [None] * len(rows)
    contact = np.full(len(rows), -1, dtype=np.int64)
    for j, c in enumerate(contact_ids):
        if c is not None:
            state, contact[j] = _contact_position(state, c)
    content_ids: list[str | None] = (
        id_list(rows["content_id"]) if "content_id" in rows else [None] * len(rows)
    )
    state, content = _content_positions(state, content_ids)
    value = (
        rows["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "value" in rows
        else np.full(len(rows), np.nan)
    )
    ns = column_ns(rows["ts"])
    new = {
        "tp_ns": ns,
        "tp_channel": category_codes(rows["channel"], taxonomy.channel_names),
        "tp_event": category_codes(rows["event_type"], taxonomy.event_type_names),
        "tp_contact": contact,
        "tp_content": content,
        "tp_value": value,
    }
    merged = {k: np.concatenate([getattr(state, k), v]) for k, v in new.items()}
    order = np.argsort(merged["tp_ns"], kind="stable")
    state = replace(
        state,
        tp_ns=merged["tp_ns"][order],
        tp_channel=merged["tp_channel"][order],
        tp_event=merged["tp_event"][order],
        tp_contact=merged["tp_contact"][order],
        tp_content=merged["tp_content"][order],
        tp_value=merged["tp_value"][order],
    )
    return fold(state, state.folded.before_ns)


def add_exposures(state: FeatureState, rows: pd.DataFrame) -> FeatureState:
    """``state`` with the exposures ``rows`` added (any order, any time)."""
    if rows.empty:
        return state
    state, content = _content_positions(state, id_list(rows["content_id"]))
    ns = np.concatenate([state.exp_ns, column_ns(rows["ts"])])
    content = np.concatenate([state.exp_content, content])
    order = np.argsort(ns, kind="stable")
    return fold(
        replace(state, exp_ns=ns[order], exp_content=content[order]), state.folded.before_ns
    )


def add_stages(state: FeatureState, rows: pd.DataFrame, taxonomy: Taxonomy) -> FeatureState:
    """``state`` with the CRM stage records ``rows`` added (kept whole: a handful per
    account; at equal times the one added later counts as the later record)."""
    if rows.empty:
        return state
    ns = np.concatenate([state.stage_ns, column_ns(rows["ts"])])
    phase = np.concatenate(
        [state.stage_phase, category_codes(rows["phase"], list(taxonomy.phases))]
    )
    order = np.argsort(ns, kind="stable")
    return replace(state, stage_ns=ns[order], stage_phase=phase[order])


def fold(state: FeatureState, before_ns: int) -> FeatureState:
    """``state`` with its touchpoints and exposures before ``before_ns`` (or before the
    current fold point, if later) folded into :class:`Folded`. Features can then be derived
    at as-of dates from ``before_ns`` + 365 days on."""
    before_ns = max(before_ns, state.folded.before_ns)
    if before_ns == NEVER:
        return state
    old = state.tp_ns < before_ns
    old_exp = state.exp_ns < before_ns
    if not old.any() and not old_exp.any():
        return replace(state, folded=replace(state.folded, before_ns=before_ns))
    f = state.folded
    ns = state.tp_ns[old]
    event, channel = state.tp_event[old], state.tp_channel[old]
    contact, content = state.tp_contact[old], state.tp_content[old]
    channel_last, event_last = f.channel_last.copy(), f.event_last.copy()
    contact_last, content_last = f.contact_last.copy(), f.content_last.copy()
    event_count, content_count = f.event_count.copy(), f.content_count.copy()
    for last, codes in (
        (channel_last, channel),
        (event_last, event),
        (contact_last, contact),
        (content_last, content),
    ):
        keep = codes >= 0
        np.maximum.at(last, codes[keep], ns[keep])
    np.add.at(event_count, event[event >= 0], 1)
    np.add.at(content_count, content[content >= 0], 1)
    times = np.concatenate([ns, state.exp_ns[old_exp]])
    folded = Folded(
        before_ns=before_ns,
        first_touch_ns=min(f.first_touch_ns, int(ns.min(initial=f.first_touch_ns))),
        last_touch_ns=max(f.last_touch_ns, int(ns.max(initial=f.last_touch_ns))),
        first_activity_ns=min(f.first_activity_ns, int(times.min(initial=f.first_activity_ns))),
        channel_last=channel_last,
        event_last=event_last,
        event_count=event_count,
        contact_last=contact_last,
        content_last=content_last,
        content_count=content_count,
    )
    keep_tp, keep_exp = ~old, ~old_exp
    return replace(
        state,
        tp_ns=state.tp_ns[keep_tp],
        tp_channel=state.tp_channel[keep_tp],
        tp_event=state.tp_event[keep_tp],
        tp_contact=state.tp_contact[keep_tp],
        tp_content=state.tp_content[keep_tp],
        tp_value=state.tp_value[keep_tp],
        exp_ns=state.exp_ns[keep_exp],
        exp_content=state.exp_content[keep_exp],
        folded=folded,
    )


def valid_from_ns(state: FeatureState) -> int:
    """The earliest as-of (ns) the state can derive features at: nothing folded, any."""
    before = state.folded.before_ns
    return NEVER if before == NEVER else before + HORIZON_NS
