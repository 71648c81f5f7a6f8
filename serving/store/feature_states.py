"""Accounts' feature states in the store (``feature_states``; the state itself is
``features.pipeline.incremental``): read with the account's decisions for a cold request,
built for every account by ``nba load`` or for one by the first cold request that finds
none current, and updated in the ingest transaction with the account's new touchpoints.

A state row is current when its ``data_version`` equals the account's: ingestion bumps
the account's version and, in the same transaction, writes the updated state under the new
version; anything else that changes an account's rows (a bulk load) leaves its state
behind, to be rebuilt from the rows when next needed."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, bindparam, select

from features.pipeline.incremental import (
    KEEP_DAYS,
    FeatureState,
    StateError,
    build_states,
    decode_state,
    encode_state,
    fold,
    merge_rows,
)
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY
from serving.store.engine import IN_CHUNK
from serving.store.frames import canonical_frame, schema_select, store_columns
from serving.store.tables import BY_NAME, Account, FeatureStateRow

# Accounts whose rows ``nba load`` reads and whose states it builds at once.
BUILD_CHUNK_ACCOUNTS = 2_000


@dataclass(frozen=True)
class StateRead:
    """What a cold request reads of a known account: its data version, its current
    feature state (None: none current) and its decisions as canonical exposures (the
    service's own decisions count as exposures and are not in the state)."""

    data_version: int
    state: bytes | None
    decisions: pd.DataFrame


def fold_point(now_ns: int) -> int:
    """Events before this are folded when a state is written at ``now_ns``."""
    return now_ns - KEEP_DAYS * NS_PER_DAY


# One account's data version and its state when current (NULL: none current), in one
# query built once (a cold request reads it).
_VERSION_AND_STATE = (
    select(Account.data_version, FeatureStateRow.state)
    .outerjoin(
        FeatureStateRow,
        and_(
            FeatureStateRow.account_id == Account.account_id,
            FeatureStateRow.data_version == Account.data_version,
        ),
    )
    .where(Account.account_id == bindparam("account_id"))
)


def version_and_state(conn: Connection, account_id: str) -> tuple[int, bytes | None] | None:
    """The account's data version and its current state (None: none current); None when
    the account is unknown."""
    found = conn.execute(_VERSION_AND_STATE, {"account_id": account_id}).first()
    if found is None:
        return None
    return int(found[0]), None if found[1] is None else bytes(found[1])


def current_states(conn: Connection, account_ids: Collection[str]) -> dict[str, bytes]:
    """account_id -> state blob of the accounts whose state is current."""
    ids = sorted(account_ids)
    out: dict[str, bytes] = {}
    current = and_(
        FeatureStateRow.account_id == Account.account_id,
        FeatureStateRow.data_version == Account.data_version,
    )
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        rows = conn.execute(
            select(FeatureStateRow.account_id, FeatureStateRow.state)
            .join(Account, current)
            .where(FeatureStateRow.account_id.in_(chunk))
        ).all()
        out.update({str(a): bytes(s) for a, s in rows})
    return out


def save_states(conn: Connection, rows: Sequence[Mapping[str, Any]], insert: Any) -> None:
    """Upsert ``rows`` (account_id, data_version, state) with the dialect's ``insert``."""
    if not rows:
        return
    statement = insert(BY_NAME["feature_states"])
    statement = statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={"data_version": statement.excluded.data_version, "state": statement.excluded.state},
    )
    conn.execute(statement, list(rows))


def updated_states(
    conn: Connection,
    before: Mapping[str, bytes],
    touchpoints: Sequence[Mapping[str, Any]],
    taxonomy: Taxonomy,
    now_ns: int,
) -> list[dict[str, Any]]:
    """The rows to save for the accounts of ``before`` (their states current before this
    ingest) after it: each state with the account's row and contacts as stored now and its
    new ``touchpoints`` (store rows) added, under the account's new data version. A state
    that no longer decodes is left out (rebuilt from the rows when needed)."""
    if not before:
        return []
    ids = sorted(before)
    columns = store_columns("touchpoints")
    mine = [tuple(r.get(c) for c in columns) for r in touchpoints if r["account_id"] in before]
    data = JourneyData(
        accounts=_frame(conn, "accounts", ids, taxonomy),
        contacts=_frame(conn, "contacts", ids, taxonomy),
        touchpoints=canonical_frame("touchpoints", mine, taxonomy),
        content=pd.DataFrame(),
        stages=pd.DataFrame(),
        exposures=pd.DataFrame(),
    )
    versions = dict(
        conn.execute(
            select(Account.account_id, Account.data_version).where(Account.account_id.in_(ids))
        ).all()
    )
    states: dict[str, FeatureState] = {}
    for account_id in ids:
        try:
            states[account_id] = decode_state(before[account_id])
        except StateError:
            continue
    return [
        {
            "account_id": account_id,
            "data_version": int(versions[account_id]),
            "state": encode_state(fold(state, fold_point(now_ns))),
        }
        for account_id, state in merge_rows(states, data, taxonomy).items()
    ]


def _frame(conn: Connection, name: str, ids: Sequence[str], taxonomy: Taxonomy) -> pd.DataFrame:
    table = BY_NAME[name]
    rows = conn.execute(schema_select(name).where(table.c.account_id.in_(list(ids)))).all()
    return canonical_frame(name, rows, taxonomy)


def built_states(
    read: Callable[[list[str]], tuple[dict[str, int], Any]],
    account_ids: Sequence[str],
    taxonomy: Taxonomy,
    now_ns: int,
) -> list[dict[str, Any]]:
    """The rows to save for ``account_ids``, built from their rows: ``read(ids)`` returns
    their data versions (read first) and their journey rows (decisions left out)."""
    versions, data = read(list(account_ids))
    states = build_states(data, taxonomy)
    return [
        {
            "account_id": a,
            "data_version": versions[a],
            "state": encode_state(fold(states[a], fold_point(now_ns))),
        }
        for a in account_ids
        if a in states and a in versions
    ]
