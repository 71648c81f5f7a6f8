"""Candidates: what arbitration knows about an account (:class:`AccountContext`, its recent
history as :class:`Recent`), its (contact, content) candidates as arrays
(:class:`PreparedCandidates`), the request's filters and the eligibility rules that hold
candidates back before any cap applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from features.timestamps import NS_PER_DAY, column_ns
from models.arbitration.catalog import PreparedCatalog, positions, require_columns
from models.arbitration.config import Eligibility
from models.arbitration.errors import ArbitrationError

HoldRule = Literal[
    "filtered by channel",
    "dismissed recently",
    "consumed recently",
    "wrong phase",
    "wrong role",
    "contact cap",
    "account cap",
]
# Hold-back rules, in precedence order: a candidate is reported under the first that holds it.
RULE_CHANNEL: HoldRule = "filtered by channel"
RULE_DISMISSED: HoldRule = "dismissed recently"
RULE_CONSUMED: HoldRule = "consumed recently"
RULE_PHASE: HoldRule = "wrong phase"
RULE_ROLE: HoldRule = "wrong role"
RULE_CONTACT_CAP: HoldRule = "contact cap"
RULE_ACCOUNT_CAP: HoldRule = "account cap"
HOLD_RULES: tuple[HoldRule, ...] = (
    RULE_CHANNEL,
    RULE_DISMISSED,
    RULE_CONSUMED,
    RULE_PHASE,
    RULE_ROLE,
    RULE_CONTACT_CAP,
    RULE_ACCOUNT_CAP,
)
# Integer codes of the rules above (0 = eligible): the per-candidate rule array is int8.
RULE_CODE: dict[HoldRule, int] = {rule: i + 1 for i, rule in enumerate(HOLD_RULES)}

# The contact_id of an account-level action: addressed to the account, not to a person (an
# account without current contacts; the served log stores it as a null contact).
ACCOUNT_LEVEL = ""


@dataclass(frozen=True)
class Recent:
    """Rows of an account's recent history as plain columns: what was consumed, dismissed
    or served (``content_id``), by whom (``contact_id``; None for account-level rows, or
    no column at all) and when (``ts_ns``, nanoseconds since the epoch, UTC).

    The serving hot path builds these from database rows directly; a DataFrame with
    content_id, ts and optionally contact_id columns converts with :meth:`of`."""

    content_id: Sequence[str | None]
    ts_ns: np.ndarray
    contact_id: Sequence[str | None] | None = None

    def __post_init__(self) -> None:
        if len(self.ts_ns) != len(self.content_id) or (
            self.contact_id is not None and len(self.contact_id) != len(self.content_id)
        ):
            raise ArbitrationError(
                f"recent rows: {len(self.content_id)} content ids, {len(self.ts_ns)} times"
                + ("" if self.contact_id is None else f", {len(self.contact_id)} contact ids")
                + "; expected one of each per row"
            )

    def __len__(self) -> int:
        return len(self.content_id)

    @classmethod
    def of(cls, frame: pd.DataFrame | Recent | None, table: str) -> Recent:
        """``frame``'s rows (content_id, ts, optional contact_id) as :class:`Recent`;
        ``table`` names it in the error for a missing column."""
        if isinstance(frame, Recent):
            return frame
        if frame is None or len(frame) == 0:
            return NOTHING_RECENT
        require_columns(frame, table, ["content_id", "ts"])
        return cls(
            content_id=frame["content_id"].tolist(),
            ts_ns=column_ns(frame["ts"]),
            contact_id=frame["contact_id"].tolist() if "contact_id" in frame.columns else None,
        )


NOTHING_RECENT = Recent(content_id=(), ts_ns=np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class AccountContext:
    """What arbitration knows about one account at decision time.

    ``phase_proba`` holds P(phase) in the order of ``phase_names`` (the taxonomy's default
    phases); ``churn_risk`` the calibrated churn probability; ``contacts`` the account's
    contacts (contact_id, role; not needed when the candidates are prepared). ``consumed``
    are content touchpoints (content_id, contact_id — null for account-level touchpoints,
    ts); ``dismissed`` the account's
    dismissals (content_id, ts); ``served_last_week`` the actions already served or shown
    (contact_id, content_id, ts; older rows are ignored). Each of the three is a DataFrame
    with those columns or the same rows as :class:`Recent`. ``contact_id`` / ``role``
    restrict the candidates to one contact or role; ``channel`` holds back items of other
    channels.
    """

    account_id: str
    phase_proba: np.ndarray
    phase_names: Sequence[str]
    churn_risk: float
    contacts: pd.DataFrame | None = None
    consumed: pd.DataFrame | Recent = NOTHING_RECENT
    dismissed: pd.DataFrame | Recent = NOTHING_RECENT
    served_last_week: pd.DataFrame | Recent = NOTHING_RECENT
    contact_id: str | None = None
    role: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class PreparedCandidates:
    """An account's candidates and contacts as arrays, built once by
    :func:`prepare_candidates` (serving keeps them with the account's cached predictions;
    :func:`~models.arbitration.rank_actions` also accepts the DataFrames and prepares them
    per call)."""

    p: np.ndarray  # candidate -> P(response), NaN = not a candidate
    item: np.ndarray  # candidate -> catalog row
    contact: np.ndarray  # candidate -> contact row
    contact_ids: np.ndarray  # object array of str
    contact_roles: np.ndarray  # object array of str ('' for a contact without a role)
    contact_position: dict[str, int]
    role_code: np.ndarray  # contact -> column of the catalog's role_fit (-1: no item lists it)
    catalog_size: int
    account_level: int = -1  # contact row of the account-level addressee (-1: none)
    # candidate -> the challenger model's P(response) (the next-content version under trial,
    # ``models.contract.CHALLENGER``); None when no challenger is served
    p_challenger: np.ndarray | None = None


def addressees(contacts: pd.DataFrame) -> pd.DataFrame:
    """Who an account's actions can address: its ``contacts`` (contact_id, role, ...) as
    given, or, for an account without any, one account-level addressee (contact_id
    :data:`ACCOUNT_LEVEL`, no role), so that the account still gets account-level plays."""
    if len(contacts):
        return contacts
    return pd.DataFrame({"contact_id": pd.Series([ACCOUNT_LEVEL], dtype=object), "role": [None]})


def prepare_candidates(
    candidates: pd.DataFrame,
    contacts: pd.DataFrame,
    catalog: PreparedCatalog,
    account_id: str = "",
) -> PreparedCandidates:
    """``candidates`` (contact_id, content_id, p_response and, when a challenger is
    served, p_challenger) of the account's ``contacts`` (contact_id, role) as integer codes
    against ``catalog``. Raises
    :class:`ArbitrationError` for a content id not in the catalog or a contact id not among
    the contacts (``account_id`` names the account in the message)."""
    require_columns(candidates, "candidates", ["contact_id", "content_id", "p_response"])
    require_columns(contacts, "contacts", ["contact_id", "role"])
    p = candidates["p_response"].to_numpy(dtype=np.float64, na_value=np.nan)
    p_challenger = (
        candidates["p_challenger"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "p_challenger" in candidates.columns
        else None
    )
    item = positions(candidates["content_id"], catalog.position)
    if (item < 0).any():
        bad = candidates["content_id"][item < 0].unique()[:5].tolist()
        raise ArbitrationError(
            f"table candidates column 'content_id': values {bad} are not in the content catalog"
        )
    contact_ids, contact_position, contact_roles, role_code = _contact_codes(contacts, catalog)
    contact = positions(candidates["contact_id"], contact_position)
    if (contact < 0).any():
        bad = candidates["contact_id"][contact < 0].unique()[:5].tolist()
        raise ArbitrationError(
            f"table candidates column 'contact_id': values {bad} are not contacts of account "
            f"{account_id!r}"
        )
    return PreparedCandidates(
        p=p,
        item=item,
        contact=contact,
        contact_ids=contact_ids,
        contact_roles=contact_roles,
        contact_position=contact_position,
        role_code=role_code,
        catalog_size=len(catalog.content_ids),
        account_level=contact_position.get(ACCOUNT_LEVEL, -1),
        p_challenger=p_challenger,
    )


def prepare_grid(
    p_response: np.ndarray,
    contacts: pd.DataFrame,
    catalog: PreparedCatalog,
    p_challenger: np.ndarray | None = None,
) -> PreparedCandidates:
    """:func:`prepare_candidates` of every contact of ``contacts`` x every catalog item,
    contact-major, ``p_response`` one per pair in that order (what scoring an account
    gives), without a candidates frame to look the ids up in. Raises
    :class:`ArbitrationError` when ``p_response`` is not one per pair."""
    require_columns(contacts, "contacts", ["contact_id", "role"])
    return prepare_contact_grid(
        p_response,
        contacts["contact_id"].astype(str).tolist(),
        contacts["role"].tolist(),
        catalog,
        p_challenger,
    )


def prepare_contact_grid(
    p_response: np.ndarray,
    contact_ids: Sequence[str],
    roles: Sequence[Any],
    catalog: PreparedCatalog,
    p_challenger: np.ndarray | None = None,
) -> PreparedCandidates:
    """:func:`prepare_grid` of contacts given as their ids and roles (None or NaN: no
    role), for a caller holding no frame of them (one account's frame costs more than its
    arbitration). ``p_challenger``: the version on trial's P(response), in the same order."""
    n_items = len(catalog.content_ids)
    if len(p_response) != len(contact_ids) * n_items:
        raise ArbitrationError(
            f"p_response has {len(p_response)} values for {len(contact_ids)} contacts x "
            f"{n_items} catalog items; expected one per pair"
        )
    ids, contact_position, contact_roles, role_code = _codes(contact_ids, roles, catalog)
    block = positions(ids.tolist(), contact_position)
    return PreparedCandidates(
        p=np.asarray(p_response, dtype=np.float64),
        item=np.tile(np.arange(n_items, dtype=np.int64), len(ids)),
        contact=np.repeat(block, n_items),
        contact_ids=ids,
        contact_roles=contact_roles,
        contact_position=contact_position,
        role_code=role_code,
        catalog_size=n_items,
        account_level=contact_position.get(ACCOUNT_LEVEL, -1),
        p_challenger=None if p_challenger is None else np.asarray(p_challenger, dtype=np.float64),
    )


def _contact_codes(
    contacts: pd.DataFrame, catalog: PreparedCatalog
) -> tuple[np.ndarray, dict[str, int], np.ndarray, np.ndarray]:
    """(contact ids, id -> position, roles ("" unknown), role codes in the catalog)."""
    return _codes(contacts["contact_id"].astype(str).tolist(), contacts["role"].tolist(), catalog)


def _codes(
    contact_ids: Sequence[str], roles: Sequence[Any], catalog: PreparedCatalog
) -> tuple[np.ndarray, dict[str, int], np.ndarray, np.ndarray]:
    """:func:`_contact_codes` of the contacts' ids (str) and roles."""
    ids = np.array(list(contact_ids), dtype=object)
    contact_position = {c: i for i, c in enumerate(contact_ids)}
    contact_roles = np.array(["" if pd.isna(r) else str(r) for r in roles], dtype=object)
    role_code = np.array([catalog.role_index.get(r, -1) for r in contact_roles], dtype=np.int64)
    return ids, contact_position, contact_roles, role_code


def candidates_for(
    context: AccountContext,
    candidates: pd.DataFrame | PreparedCandidates,
    cat: PreparedCatalog,
) -> PreparedCandidates:
    """``candidates`` prepared against ``cat`` (as given when already prepared). Raises
    :class:`ArbitrationError` for a DataFrame without the context's contacts or prepared
    candidates of another catalog."""
    if isinstance(candidates, PreparedCandidates):
        prepared = candidates
    else:
        if context.contacts is None:
            raise ArbitrationError(
                f"account {context.account_id!r}: candidates given as a DataFrame need the "
                "context's contacts (contact_id, role)"
            )
        prepared = prepare_candidates(candidates, context.contacts, cat, context.account_id)
    if prepared.catalog_size != len(cat.content_ids):
        raise ArbitrationError(
            f"the prepared candidates index a catalog of {prepared.catalog_size} items; this "
            f"catalog has {len(cat.content_ids)}"
        )
    return prepared


class CandidateRows(NamedTuple):
    """The candidates one decision ranks, as parallel arrays: those with a P(response) that
    pass the request's contact and role filters, in the prepared candidates' order. (A
    NamedTuple, like the other per-decision carriers: the cheapest immutable record.)"""

    item: np.ndarray  # catalog row
    contact: np.ndarray  # contact row of the prepared candidates
    p: np.ndarray  # P(response) clipped to [0, 1]
    p_challenger: np.ndarray | None = None  # the challenger's, clipped alike (None: none)


def select_rows(prepared: PreparedCandidates, context: AccountContext) -> CandidateRows:
    """The prepared candidates the request ranks (see :class:`CandidateRows`)."""
    p_all, c_all = prepared.p, prepared.contact
    keep = ~np.isnan(p_all)
    if context.contact_id is not None:
        keep &= c_all == prepared.contact_position.get(context.contact_id, -2)
    if context.role is not None:
        keep &= prepared.contact_roles[c_all] == context.role
    rows = np.flatnonzero(keep)
    challenger = prepared.p_challenger
    return CandidateRows(
        item=prepared.item[rows],
        contact=c_all[rows],
        p=np.clip(p_all[rows], 0.0, 1.0),
        # A challenger without a prediction for a row the champion ranks (it cannot have
        # one the champion lacks: both score the same grid) would never pick it.
        p_challenger=None
        if challenger is None
        else np.clip(np.nan_to_num(challenger[rows], nan=0.0), 0.0, 1.0),
    )


def eligibility_rules(
    rows: CandidateRows,
    context: AccountContext,
    cat: PreparedCatalog,
    prepared: PreparedCandidates,
    eligibility: Eligibility,
    *,
    phase_fit: np.ndarray,
    role_match: np.ndarray,
    now_ns: int,
) -> np.ndarray:
    """Per candidate row, the code (:data:`RULE_CODE`) of the first eligibility rule that
    holds it back, 0 for an eligible row. Rules are assigned from the lowest precedence up,
    so the first one wins."""
    item, contact = rows.item, rows.contact
    rule = np.zeros(len(item), dtype=np.int8)
    if eligibility.require_role_fit:
        rule[~role_match] = RULE_CODE[RULE_ROLE]
    if eligibility.require_phase_fit:
        rule[phase_fit < eligibility.min_phase_fit] = RULE_CODE[RULE_PHASE]
    consumed = recent_pairs(
        context.consumed,
        "consumed",
        cat,
        prepared.contact_position,
        now_ns,
        eligibility.consumed_recently_days,
    )
    no_contact = len(prepared.contact_ids)  # recent_pairs' last row: no known contact
    rule[consumed[contact, item] | consumed[no_contact, item]] = RULE_CODE[RULE_CONSUMED]
    dismissed = _recent_items(context.dismissed, cat, now_ns, eligibility.dismissed_recently_days)
    rule[dismissed[item]] = RULE_CODE[RULE_DISMISSED]
    if context.channel is not None:
        rule[cat.channel[item] != context.channel] = RULE_CODE[RULE_CHANNEL]
    return rule


def recent_pairs(
    frame: pd.DataFrame | Recent | None,
    table: str,
    cat: PreparedCatalog,
    contact_position: dict[str, int],
    now_ns: int,
    days: float,
) -> np.ndarray:
    """(contacts + 1) x items bool: the contact had a row for the item in the ``days`` before
    now (inclusive); the last row collects rows without a known contact. Rows whose content
    is not in the catalog are ignored (they cannot be candidates). When the addressees are
    the account-level one (:func:`addressees`), every row is the account's: rows without a
    known contact go to the account-level row."""
    n_contacts = len(contact_position)
    out = np.zeros((n_contacts + 1, len(cat.content_ids)), dtype=bool)
    rows = Recent.of(frame, table)
    if len(rows) == 0:
        return out
    age = now_ns - rows.ts_ns
    recent = (age >= 0) & (age <= days * NS_PER_DAY)
    item = positions(rows.content_id, cat.position)
    # Served account-level actions are logged with a null contact: they are the
    # account-level addressee's, so its caps and "served already" see them.
    unknown = contact_position.get(ACCOUNT_LEVEL, n_contacts)
    if rows.contact_id is not None:
        c = positions(rows.contact_id, contact_position)
        c = np.where(c < 0, unknown, c)
    else:
        c = np.full(len(rows), unknown)
    sel = recent & (item >= 0)
    out[c[sel], item[sel]] = True
    return out


def _recent_items(
    frame: pd.DataFrame | Recent | None, cat: PreparedCatalog, now_ns: int, days: float
) -> np.ndarray:
    """items bool: dismissed in the ``days`` before now (account-level)."""
    out = np.zeros(len(cat.content_ids), dtype=bool)
    rows = Recent.of(frame, "dismissed")
    if len(rows) == 0:
        return out
    age = now_ns - rows.ts_ns
    item = positions(rows.content_id, cat.position)
    sel = (age >= 0) & (age <= days * NS_PER_DAY) & (item >= 0)
    out[item[sel]] = True
    return out
