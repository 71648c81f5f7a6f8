"""Feature states built from tables: every account's state of a data set at once
(:func:`build_states`, what ``nba load`` does) and the states of the accounts an ingested
batch touches, merged with the batch's rows (:func:`merge_rows`). Each table is coded once
for all accounts, then cut per account, so a state costs array operations, not frame ones;
the result equals the per-event updates of ``state`` applied to the same rows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from features.pipeline.incremental.state import (
    NEVER,
    NOT_LEFT,
    FeatureState,
    empty_state,
    fold,
    id_list,
    int_array,
    with_account,
)
from features.pipeline.prepare import category_codes
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import column_ns


def build_states(data: JourneyData, taxonomy: Taxonomy) -> dict[str, FeatureState]:
    """Returns account_id -> state of every account of ``data`` (canonical tables), nothing
    folded; equal to :func:`add_touchpoints` etc. applied to its rows in any order (each
    table is coded once, then cut per account: ``nba load`` builds every account's)."""
    tables = _Coded(data, taxonomy)
    records: list[dict[str, Any]] = data.accounts.to_dict("records")  # type: ignore[assignment]
    out: dict[str, FeatureState] = {}
    for record in records:
        account_id = str(record["account_id"])
        state = with_account(empty_state(account_id, taxonomy), record)
        out[account_id] = tables.state(state)
    return out


class _Coded:
    """The tables of ``data`` as arrays (codes, ns, ids as objects), with each account's
    row positions."""

    def __init__(self, data: JourneyData, taxonomy: Taxonomy) -> None:
        tp, ex, st, co = data.touchpoints, data.exposures, data.stages, data.contacts
        self.groups = {
            name: _groups(frame)
            for name, frame in (("contacts", co), ("touchpoints", tp), ("exposures", ex))
        }
        self.groups["stages"] = _groups(st)
        self.co_id = np.asarray(id_list(co["contact_id"]), dtype=object)
        self.co_role = np.asarray(id_list(co["role"]) if len(co) else [], dtype=object)
        self.co_created = column_ns(co["created_at"]) if len(co) else int_array()
        left = column_ns(co["left_at"]) if "left_at" in co and len(co) else int_array(len(co))
        self.co_left = np.where(left == NEVER, NOT_LEFT, left)
        self.tp_ns = column_ns(tp["ts"]) if len(tp) else int_array()
        self.tp_channel = category_codes(tp["channel"], taxonomy.channel_names)
        self.tp_event = category_codes(tp["event_type"], taxonomy.event_type_names)
        self.tp_contact = np.asarray(
            id_list(tp["contact_id"]) if "contact_id" in tp else [None] * len(tp), dtype=object
        )
        self.tp_content = np.asarray(
            id_list(tp["content_id"]) if "content_id" in tp else [None] * len(tp), dtype=object
        )
        self.tp_value = (
            tp["value"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "value" in tp
            else np.full(len(tp), np.nan)
        )
        has_exposures = len(ex) > 0 and "ts" in ex
        self.ex_ns = column_ns(ex["ts"]) if has_exposures else int_array()
        self.ex_content = np.asarray(
            id_list(ex["content_id"]) if has_exposures else [], dtype=object
        )
        self.st_ns = column_ns(st["ts"]) if len(st) else int_array()
        self.st_phase = (
            category_codes(st["phase"], list(taxonomy.phases)) if len(st) else int_array()
        )

    def _at(self, name: str, account_id: str) -> np.ndarray:
        return self.groups[name].get(account_id, np.zeros(0, dtype=np.int64))

    def state(self, state: FeatureState) -> FeatureState:
        """``state`` (an account row only) with the account's rows of every table."""
        a = state.account_id
        co, tp = self._at("contacts", a), self._at("touchpoints", a)
        ex, st = self._at("exposures", a), self._at("stages", a)
        contact_ids = [str(c) for c in self.co_id[co]]
        named = [c for c in dict.fromkeys(self.tp_contact[tp].tolist()) if c is not None]
        extra = [c for c in named if c not in set(contact_ids)]
        contacts = {c: i for i, c in enumerate([*contact_ids, *extra])}
        content = [c for c in self.tp_content[tp].tolist() if c is not None]
        content += [c for c in self.ex_content[ex].tolist() if c is not None]
        content_at = {c: i for i, c in enumerate(dict.fromkeys(content))}
        n_contacts, n_content = len(contacts), len(content_at)
        order = tp[np.argsort(self.tp_ns[tp], kind="stable")]
        ex_order = ex[np.argsort(self.ex_ns[ex], kind="stable")]
        st_order = st[np.argsort(self.st_ns[st], kind="stable")]
        return replace(
            state,
            contact_ids=list(contacts),
            contact_role=[*(None if r is None else str(r) for r in self.co_role[co])]
            + [None] * len(extra),
            contact_created_ns=np.concatenate([self.co_created[co], int_array(len(extra))]),
            contact_left_ns=np.concatenate([self.co_left[co], int_array(len(extra), NOT_LEFT)]),
            contact_listed=np.arange(n_contacts) < len(contact_ids),
            content_ids=list(content_at),
            tp_ns=self.tp_ns[order],
            tp_channel=self.tp_channel[order],
            tp_event=self.tp_event[order],
            tp_contact=np.array(
                [-1 if c is None else contacts[c] for c in self.tp_contact[order].tolist()],
                dtype=np.int64,
            ),
            tp_content=np.array(
                [-1 if c is None else content_at[c] for c in self.tp_content[order].tolist()],
                dtype=np.int64,
            ),
            tp_value=self.tp_value[order],
            exp_ns=self.ex_ns[ex_order],
            exp_content=np.array(
                [-1 if c is None else content_at[c] for c in self.ex_content[ex_order].tolist()],
                dtype=np.int64,
            ),
            stage_ns=self.st_ns[st_order],
            stage_phase=self.st_phase[st_order],
            folded=replace(
                state.folded,
                contact_last=int_array(n_contacts),
                content_last=int_array(n_content),
                content_count=int_array(n_content, 0),
            ),
        )


def _groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    if frame.empty or "account_id" not in frame:
        return {}
    indices = frame.groupby(frame["account_id"].astype(str), sort=False).indices
    return {str(k): np.asarray(v) for k, v in indices.items()}


def merge_rows(
    states: dict[str, FeatureState], data: JourneyData, taxonomy: Taxonomy
) -> dict[str, FeatureState]:
    """Each of ``states`` with its account's row and contacts as ``data`` holds them now
    and its touchpoints of ``data`` added (what ingestion does to the states of the
    accounts a batch changes: the tables are coded once for the batch, so a state costs
    array operations, not frame ones). Each equals :func:`with_account`,
    :func:`with_contacts` and :func:`add_touchpoints` applied to it."""
    coded = _Coded(data, taxonomy)
    records: list[dict[str, Any]] = data.accounts.to_dict("records")  # type: ignore[assignment]
    by_id = {str(r["account_id"]): r for r in records}
    out: dict[str, FeatureState] = {}
    for account_id, old in states.items():
        record = by_id.get(account_id)
        base = empty_state(account_id, taxonomy)
        new = coded.state(with_account(base, record) if record is not None else base)
        if record is None:
            new = replace(new, account=old.account)
        out[account_id] = _merged(old, new)
    return out


def _merged(old: FeatureState, new: FeatureState) -> FeatureState:
    """``old`` with ``new``'s account row, listed contacts and touchpoints (``new`` holds
    no exposures or stages), folded as ``old`` was."""
    listed = [
        c for c, is_listed in zip(new.contact_ids, new.contact_listed, strict=True) if is_listed
    ]
    ids = list(dict.fromkeys([*listed, *old.contact_ids, *new.contact_ids]))
    at = {c: i for i, c in enumerate(ids)}
    n = len(ids)
    role: list[str | None] = [None] * n
    created, left = int_array(n), int_array(n, NOT_LEFT)
    is_listed = np.zeros(n, dtype=bool)
    for source, only_listed in ((old, False), (new, True)):
        for i, c in enumerate(source.contact_ids):
            if only_listed and not source.contact_listed[i]:
                continue
            j = at[c]
            role[j] = source.contact_role[i]
            created[j] = source.contact_created_ns[i]
            left[j] = source.contact_left_ns[i]
            is_listed[j] = is_listed[j] or bool(source.contact_listed[i])
    old_contact = np.array([at[c] for c in old.contact_ids], dtype=np.int64)
    new_contact = np.array([at[c] for c in new.contact_ids], dtype=np.int64)
    contact_last = int_array(n)
    np.maximum.at(contact_last, old_contact, old.folded.contact_last)
    content = list(dict.fromkeys([*old.content_ids, *new.content_ids]))
    cat = {c: i for i, c in enumerate(content)}
    old_content = np.array([cat[c] for c in old.content_ids], dtype=np.int64)
    new_content = np.array([cat[c] for c in new.content_ids], dtype=np.int64)
    content_last, content_count = int_array(len(content)), int_array(len(content), 0)
    content_last[old_content] = old.folded.content_last
    content_count[old_content] = old.folded.content_count

    def remap(codes: np.ndarray, to: np.ndarray) -> np.ndarray:
        return np.where(codes >= 0, to[np.maximum(codes, 0)] if len(to) else -1, -1)

    tp_ns = np.concatenate([old.tp_ns, new.tp_ns])
    order = np.argsort(tp_ns, kind="stable")

    def joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b])[order]

    merged = replace(
        old,
        account=new.account,
        contact_ids=ids,
        contact_role=role,
        contact_created_ns=created,
        contact_left_ns=left,
        contact_listed=is_listed,
        content_ids=content,
        tp_ns=tp_ns[order],
        tp_channel=joined(old.tp_channel, new.tp_channel),
        tp_event=joined(old.tp_event, new.tp_event),
        tp_contact=joined(remap(old.tp_contact, old_contact), remap(new.tp_contact, new_contact)),
        tp_content=joined(remap(old.tp_content, old_content), remap(new.tp_content, new_content)),
        tp_value=joined(old.tp_value, new.tp_value),
        exp_content=remap(old.exp_content, old_content),
        folded=replace(
            old.folded,
            contact_last=contact_last,
            content_last=content_last,
            content_count=content_count,
        ),
    )
    return fold(merged, old.folded.before_ns)
