"""The contact policy: distinct actions per account and per contact per week. What this
week's served actions leave (:func:`week_caps`), the candidates the caps hold back before
any slot is filled (:func:`servable_order`) and greedy slot filling under the caps
(:class:`_Greedy`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from models.arbitration.candidates import (
    RULE_ACCOUNT_CAP,
    RULE_CODE,
    RULE_CONTACT_CAP,
    CandidateRows,
    PreparedCandidates,
    Recent,
    recent_pairs,
)
from models.arbitration.catalog import PreparedCatalog
from models.arbitration.config import ContactPolicy

WEEK_DAYS = 7
_CONTACT_CAP = RULE_CODE[RULE_CONTACT_CAP]
_ACCOUNT_CAP = RULE_CODE[RULE_ACCOUNT_CAP]


class WeekCaps(NamedTuple):
    """What this week's served actions leave of the contact policy for one decision."""

    account_left: int  # slots left for the account (negative when over the cap)
    contact_left: np.ndarray  # contact -> slots left (negative when over the cap)
    already: np.ndarray  # candidate row -> served this week already (needs no slot)


def week_caps(
    served: pd.DataFrame | Recent,
    rows: CandidateRows,
    cat: PreparedCatalog,
    prepared: PreparedCandidates,
    policy: ContactPolicy,
    now_ns: int,
) -> WeekCaps:
    """The caps left after the distinct (contact, content) pairs ``served`` in the
    :data:`WEEK_DAYS` days before now."""
    pairs = recent_pairs(
        served, "served_last_week", cat, prepared.contact_position, now_ns, WEEK_DAYS
    )
    account_left = policy.max_actions_per_account_per_week - int(pairs.sum())
    per_contact = pairs[: len(prepared.contact_ids)].sum(axis=1)
    contact_left = policy.max_actions_per_contact_per_week - per_contact
    if prepared.account_level >= 0:
        # The contact cap spares people; account-level actions address nobody in
        # particular, so only the account cap bounds them (more than it can leave: the
        # account cap binds, and is reported, first).
        contact_left[prepared.account_level] = policy.max_actions_per_account_per_week + 1
    return WeekCaps(
        account_left=account_left,
        contact_left=contact_left,
        already=pairs[rows.contact, rows.item],
    )


def servable_order(
    rule: np.ndarray, ev: np.ndarray, contact: np.ndarray, caps: WeekCaps
) -> np.ndarray:
    """The candidate rows that could fill the top-1 slot, best expected value first (equal
    values keep row order). Eligible rows (``rule`` 0) whose contact or account has no slot
    left get the cap's code in ``rule``, in place."""
    eligible = np.flatnonzero(rule == 0)
    order = eligible[np.argsort(-ev[eligible], kind="stable")]
    contact_left = caps.contact_left
    can_start = caps.already[order] | ((contact_left[contact[order]] > 0) & (caps.account_left > 0))
    capped_up_front = order[~can_start]
    rule[capped_up_front] = np.where(
        contact_left[contact[capped_up_front]] <= 0, _CONTACT_CAP, _ACCOUNT_CAP
    )
    return order[can_start]


def greedy_over(
    servable: np.ndarray, rows: CandidateRows, caps: WeekCaps, *, distinct: bool
) -> _Greedy:
    """The greedy filler over the ``servable`` rows (best first) under ``caps``."""
    return _Greedy(
        contact=rows.contact[servable].tolist(),
        item=rows.item[servable].tolist(),
        already=caps.already[servable].tolist(),
        contact_left=np.maximum(caps.contact_left, 0).tolist(),
        account_left=max(caps.account_left, 0),
        distinct=distinct,
    )


@dataclass
class _Greedy:
    """Greedy slot filling over the servable actions (positions into lists sorted by
    expected value, best first) under the week's caps. Python lists: a few hundred actions
    and a handful of picks, where numpy scalar access would be slower."""

    contact: list[int]
    item: list[int]
    already: list[bool]
    contact_left: list[int]
    account_left: int
    distinct: bool
    _already_after: list[int] = field(init=False)

    def __post_init__(self) -> None:
        # already-served actions at or after each position (they need no slot)
        counts = np.cumsum(np.asarray(self.already[::-1], dtype=np.int64))[::-1]
        self._already_after = [*counts.tolist(), 0]

    def fill(
        self, first: int, slots: int, *, collect: bool = False
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Positions filling ``slots`` slots after ``first`` took the top slot, and (when
        ``collect``) the positions the caps held back on the way, with their rule code."""
        uses_slot = not self.already[first]
        return self.scan(
            skip=first,
            skip_item=self.item[first] if self.distinct else -1,
            contact_used=self.contact[first] if uses_slot else -1,
            account_used=int(uses_slot),
            slots=slots,
            collect=collect,
        )

    # One tight loop on the request path: split into helpers it would pay a call per
    # candidate, so it stays whole (and above the complexity limit) on purpose.
    def scan(  # noqa: C901
        self,
        *,
        skip: int,
        skip_item: int,
        contact_used: int,
        account_used: int,
        slots: int,
        collect: bool = False,
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Greedy picks for ``slots`` slots, leaving out position ``skip`` and item
        ``skip_item`` (-1: none), with one slot less for ``contact_used`` (-1: none) and
        ``account_used`` slots less for the account."""
        left = list(self.contact_left)
        if contact_used >= 0:
            left[contact_used] -= 1
        account = self.account_left - account_used
        used = {skip_item} if skip_item >= 0 else set()
        picks: list[int] = []
        capped: list[tuple[int, int]] = []
        for pos in range(len(self.item)):
            if len(picks) >= slots:
                break
            if pos == skip:
                continue
            it = self.item[pos]
            if it in used:
                continue
            if not self.already[pos]:
                c = self.contact[pos]
                if left[c] <= 0:
                    if collect:
                        capped.append((pos, _CONTACT_CAP))
                    continue
                if account <= 0:
                    if collect:
                        capped.append((pos, _ACCOUNT_CAP))
                    elif self._already_after[pos] == 0:
                        break  # nothing further can fill a slot
                    continue
                left[c] -= 1
                account -= 1
            picks.append(pos)
            if self.distinct:
                used.add(it)
        return picks, capped
