"""The service's decisions as exposures of the data contract: every served action of kind
``decision`` (``serving.store.tables.SERVED_KINDS``) is an exposure with its recommendation
id as ``exposure_id``, the time it was served, the account, the contact (none for an
account-level action), the item and the item's channel, the exact ``propensity`` the
serving policy gave it, its rank as ``position``, the ``policy`` and, for a top-slot
decision, what it could have served (``servable``). Impressions are not exposures: the
decision they re-show is.

One reading for every consumer, so the features the service computes online and those
training computes from the store or its export count the same exposures."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, bindparam, select

from serving.store.engine import IN_CHUNK
from serving.store.tables import Recommendation

_DECISIONS = select(
    Recommendation.id,
    Recommendation.account_id,
    Recommendation.contact_id,
    Recommendation.served_at,
    Recommendation.content_id,
    Recommendation.propensity,
    Recommendation.rank,
    Recommendation.policy,
    Recommendation.servable,
).where(Recommendation.kind == "decision")
# One account's decisions, the statement built once (a cold request reads them: building
# and compiling an IN clause per request costs more than the query).
_ACCOUNT_DECISIONS = _DECISIONS.where(Recommendation.account_id == bindparam("account_id"))


def item_channels(content: pd.DataFrame) -> dict[str, str]:
    """content_id -> the item's channel (items without one are absent)."""
    known = content[content["channel"].notna()]
    return dict(zip(known["content_id"].astype(str), known["channel"].astype(str), strict=True))


def decision_exposure_rows(
    conn: Connection,
    channel: Mapping[str, str],
    account_ids: Collection[str],
    *,
    every_account: bool = False,
) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """The decisions served to ``account_ids`` (all logged ones with ``every_account``,
    then kept for ``account_ids`` alone) as rows of the store's ``exposures`` columns
    (``serving.store.frames.store_columns``), oldest first, and counts of the decisions left
    out: ``unknown_account`` (an account not among ``account_ids``: cold starts) and
    ``no_channel`` (``channel``, content_id -> channel, does not name the item's)."""
    if every_account:
        found = conn.execute(_DECISIONS).all()
    else:
        ids = sorted(account_ids)
        found = []
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            found += conn.execute(_DECISIONS.where(Recommendation.account_id.in_(chunk))).all()
    known = [r for r in found if r.account_id in account_ids]
    rows = _exposure_rows(known, channel)
    counts = {"unknown_account": len(found) - len(known), "no_channel": len(known) - len(rows)}
    return rows, counts


def account_decision_rows(
    conn: Connection, channel: Mapping[str, str], account_id: str
) -> list[tuple[Any, ...]]:
    """:func:`decision_exposure_rows` of one account (the rows alone), in one prepared
    query."""
    return _exposure_rows(
        conn.execute(_ACCOUNT_DECISIONS, {"account_id": account_id}).all(), channel
    )


def _exposure_rows(found: Sequence[Any], channel: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """Decision rows as exposure rows, oldest first (ties by account, contact, rank and
    item); items ``channel`` does not name are left out."""
    rows = [
        (
            r.id,
            r.account_id,
            r.contact_id,
            int(r.served_at),
            r.content_id,
            channel[r.content_id],
            float(r.propensity),
            float(r.rank),
            r.policy,
            r.servable,
            None,  # no custom attributes
        )
        for r in found
        if r.content_id in channel
    ]
    # Oldest first, and decisions served at the same moment in an order their content
    # fixes (account, contact, rank, item) before their random ids: training rows in the
    # same order from the same decisions, so a seeded fit (its bagging draws rows by
    # position) makes the same model however the ids came out.
    rows.sort(key=lambda row: (row[3], row[1], row[2] or "", row[7], row[4], row[0]))
    return rows
