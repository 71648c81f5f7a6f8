"""Exploration and "why not?": the epsilon-greedy draw of the top slot with every slot's
exact propensity under that mixture (:func:`fill_slots`), and the held-back candidates a
decision reports (:func:`held_back`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from models.arbitration.candidates import (
    HOLD_RULES,
    RULE_CODE,
    CandidateRows,
    PreparedCandidates,
)
from models.arbitration.caps import _Greedy
from models.arbitration.catalog import PreparedCatalog
from models.arbitration.decision import HeldBack
from models.arbitration.thompson import draw_top


class Slots(NamedTuple):
    """The filled slots of one decision: positions into the servable actions in slot order,
    each one's propensity, whether the top slot was explored, and the positions the caps
    held back while filling (with their rule code)."""

    picks: list[int]
    propensity: list[float]
    explored: bool
    capped: list[tuple[int, int]]


def fill_slots(
    ranker: _Greedy,
    k: int,
    eps: float,
    *,
    rng: np.random.Generator,
    explore: bool | None,
    sampled: np.ndarray | None = None,
) -> Slots:
    """Up to ``k`` slots: the top one drawn uniformly with probability ``eps`` (or as
    ``explore`` forces), else the best; the others filled greedily. Draws from ``rng`` only
    when there is an action to serve: the coin (unless forced), then the explored pick.

    ``sampled`` (per servable position, summing to 1: each one's probability of winning
    the posterior draw, :mod:`models.arbitration.thompson`) replaces "the best" by a draw
    from those probabilities (one more draw from ``rng`` when the coin did not explore)."""
    n = len(ranker.item)
    if not n:
        return Slots(picks=[], propensity=[], explored=False, capped=[])
    explored = bool(rng.random() < eps) if explore is None else bool(explore)
    if explored or sampled is None:
        first = int(rng.integers(n)) if explored else 0
    else:
        first = draw_top(sampled, rng)
    rest, capped = ranker.fill(first, k - 1, collect=True)
    picks = [first, *rest]
    if sampled is None:
        propensity = _propensities(ranker, picks, k, eps)
    else:
        propensity = _sampled_propensities(ranker, picks, k, (1 - eps) * sampled + eps / n)
    return Slots(picks=picks, propensity=propensity, explored=explored, capped=capped)


def _sampled_propensities(
    ranker: _Greedy, picks: list[int], k: int, top: np.ndarray
) -> list[float]:
    """P(the policy serves the action at ``picks[j]`` in slot j), per slot, when the top
    slot is drawn with probabilities ``top`` (per servable position) and the others are
    filled greedily after it: slot 1 is ``top`` of its pick; slot j > 1 sums ``top`` over
    the draws whose fill puts that action there (the draws grouped by fill, as in
    :func:`_propensities`)."""
    props = [float(top[picks[0]])]
    if len(picks) == 1:
        return props
    counts: dict[tuple[int, int], float] = {}
    for fill, members in _draw_members(ranker, k - 1):
        weight = float(top[members].sum())
        if weight <= 0:
            continue
        for j, q in enumerate(fill):
            counts[(j, q)] = counts.get((j, q), 0.0) + weight
    props.extend(counts.get((j, q), 0.0) for j, q in enumerate(picks[1:]))
    return props


def _propensities(ranker: _Greedy, picks: list[int], k: int, eps: float) -> list[float]:
    """P(the epsilon-greedy policy serves the action at ``picks[j]`` in slot j), per slot.

    Slot 1: (1 - eps) [greedy pick] + eps / n. Slot j > 1 depends on which action the top
    slot drew: P = (1 - eps) [fill after the greedy pick puts it there] + eps / n x #{top-1
    draws whose fill puts it there}.

    A draw s changes the greedy fill of the other slots through one slot less for the
    account and its contact (unless s was served this week already), and by leaving out its
    own content (or, without distinct content, its own position). Scanning in lockstep with
    a reference fill that has the slot effects shows that the fill after s equals that
    reference unless s's content (position) is among the reference's picks; the contact's
    slot matters only when the reference without it gives the contact all its slots. So the
    draws fall into a few groups with one fill each: computing those (not n fills) is
    exact.
    """
    n = len(ranker.item)
    props = [(1 - eps) * (picks[0] == 0) + eps / n]
    if len(picks) == 1:
        return props
    slots = k - 1
    greedy_fill, _ = ranker.fill(0, slots)
    counts: dict[tuple[int, int], int] = {}  # (slot, position) -> number of draws
    if eps > 0:
        for fill, size in _draw_groups(ranker, slots):
            for j, q in enumerate(fill):
                counts[(j, q)] = counts.get((j, q), 0) + size
    for j, q in enumerate(picks[1:]):
        greedy = (1 - eps) * (j < len(greedy_fill) and greedy_fill[j] == q)
        props.append(greedy + eps / n * counts.get((j, q), 0))
    return props


def _draw_groups(ranker: _Greedy, slots: int) -> list[tuple[list[int], int]]:
    """(fill of the other slots, number of top-1 draws giving it) for every top-1 draw."""
    return [(fill, len(members)) for fill, members in _draw_members(ranker, slots)]


def _draw_members(ranker: _Greedy, slots: int) -> list[tuple[list[int], np.ndarray]]:
    """(fill of the other slots, the top-1 draws giving it) for every top-1 draw."""
    already = np.asarray(ranker.already, dtype=bool)
    contact = np.asarray(ranker.contact, dtype=np.int64)
    item = np.asarray(ranker.item, dtype=np.int64)
    n_items = int(item.max()) + 2
    references, ref_of = _references(ranker, slots, already, contact)
    affected = _affected(ranker, references, ref_of, item, n_items)
    out: list[tuple[list[int], np.ndarray]] = []
    plain = np.flatnonzero(~affected)
    for r, ref in enumerate(references):
        members = plain[ref_of[plain] == r]
        if len(members):
            out.append((ref, members))
    rows = np.flatnonzero(affected)
    if len(rows):
        # affected draws with the same slot use, contact and content give the same fill
        n_contacts = len(ranker.contact_left) + 1
        key = (ref_of[rows] * n_contacts + contact[rows]) * n_items + item[rows]
        if not ranker.distinct:
            key = key * (len(item) + 1) + rows
        _, first_of, inverse = np.unique(key, return_index=True, return_inverse=True)
        for g, s in enumerate(rows[first_of].tolist()):
            out.append((ranker.fill(s, slots)[0], rows[inverse.ravel() == g]))
    return out


def _references(
    ranker: _Greedy, slots: int, already: np.ndarray, contact: np.ndarray
) -> tuple[list[list[int]], np.ndarray]:
    """(reference fills, draw -> its reference): index 0 = the draw was served already (no
    slot used), 1 = it uses a slot, 2 + i = it uses a slot of a contact the slot-using
    reference saturates."""
    left = np.asarray(ranker.contact_left, dtype=np.int64)
    references: list[list[int]] = [
        ranker.scan(skip=-1, skip_item=-1, contact_used=-1, account_used=u, slots=slots)[0]
        for u in (0, 1)
    ]
    ref_of = np.where(already, 0, 1)
    ref1 = np.asarray(references[1], dtype=np.int64)
    if len(ref1):
        taken = np.bincount(contact[ref1][~already[ref1]], minlength=len(left))
        for c in np.flatnonzero((taken > 0) & (taken >= left)).tolist():
            ref_of[~already & (contact == c)] = len(references)
            references.append(
                ranker.scan(skip=-1, skip_item=-1, contact_used=c, account_used=1, slots=slots)[0]
            )
    return references, ref_of


def _affected(
    ranker: _Greedy,
    references: list[list[int]],
    ref_of: np.ndarray,
    item: np.ndarray,
    n_items: int,
) -> np.ndarray:
    """draw bool: the draw's content (its position, without distinct content) is among its
    reference's picks, so it needs its own fill. ``n_items`` bounds the item codes."""
    n = len(item)
    affected = np.zeros(n, dtype=bool)
    for r, ref in enumerate(references):
        mine = ref_of == r
        picked = np.asarray(ref, dtype=np.int64)
        if ranker.distinct:
            in_ref = np.zeros(n_items, dtype=bool)
            in_ref[item[picked]] = True
            affected |= mine & in_ref[item]
        else:
            in_ref = np.zeros(n, dtype=bool)
            in_ref[picked] = True
            affected |= mine & in_ref
    return affected


def held_back(
    rule: np.ndarray,
    ev: np.ndarray,
    rows: CandidateRows,
    cat: PreparedCatalog,
    prepared: PreparedCandidates,
    per_rule: int,
) -> tuple[HeldBack, ...]:
    """The best ``per_rule`` held-back candidates of each rule (one per content item), rules
    in precedence order, best expected value first within a rule."""
    if per_rule == 0:
        return ()
    item, contact = rows.item, rows.contact
    # rows grouped by rule code, in row order within a code (one sort, not a scan per rule)
    grouped = np.argsort(rule, kind="stable")
    ends = np.cumsum(np.bincount(rule, minlength=len(HOLD_RULES) + 1)).tolist()
    out: list[HeldBack] = []
    for name in HOLD_RULES:
        code = RULE_CODE[name]
        if ends[code] == ends[code - 1]:
            continue
        held = grouped[ends[code - 1] : ends[code]]
        held = held[np.argsort(-ev[held], kind="stable")]
        _, first = np.unique(item[held], return_index=True)
        held = held[np.sort(first)][:per_rule]
        out.extend(
            HeldBack(
                content_id=str(cat.content_ids[item[r]]),
                contact_id=str(prepared.contact_ids[contact[r]]),
                role=str(prepared.contact_roles[contact[r]]),
                title=str(cat.title[item[r]]),
                content_type=str(cat.content_type[item[r]]),
                rule=name,
                expected_value=float(ev[r]),
            )
            for r in held.tolist()
        )
    return tuple(out)
