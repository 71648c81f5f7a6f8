"""Arbitration: three model outputs -> ranked next actions for one account.

Inputs per account: the phase model's probabilities over the taxonomy phases, the churn
model's calibrated churn risk and the next-content model's P(response) for each
(contact, content item) candidate. Each candidate gets

    expected value = P(response) x value(item) x fit x churn lever

where fit = phase fit (the item's phases weighted by the predicted phase distribution) x
role fit (does the item list the contact's role) and the churn lever multiplies retention
plays by ``1 + lever_strength x churn risk``. Eligibility rules (request channel, dismissed
or consumed recently, wrong phase, wrong role) and the contact policy (distinct actions per
account and per contact per week) hold candidates back; :attr:`Decision.held_back` says which
and why ("why not?").

The policy is epsilon-greedy: with probability ``exploration_rate`` the top-1 slot is drawn
uniformly from the actions that could fill it, otherwise it is the highest expected value;
the other slots are filled greedily. Every action carries its propensity under that mixture
(exactly, for every slot), so later policies can be evaluated off-policy from the logs.

Everything here is pure: no I/O except :func:`load_arbitration_config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.errors import InvalidInputError
from features.timestamps import NS_PER_DAY, column_ns, to_ns

DEFAULT_ARBITRATION_PATH = Path(str(resources.files("models") / "config" / "arbitration.yaml"))
WEEK_DAYS = 7

ChurnBand = Literal["low", "medium", "high"]

# Hold-back rules, in precedence order: a candidate is reported under the first that holds it.
RULE_CHANNEL = "filtered by channel"
RULE_DISMISSED = "dismissed recently"
RULE_CONSUMED = "consumed recently"
RULE_PHASE = "wrong phase"
RULE_ROLE = "wrong role"
RULE_CONTACT_CAP = "contact cap"
RULE_ACCOUNT_CAP = "account cap"
HOLD_RULES: tuple[str, ...] = (
    RULE_CHANNEL,
    RULE_DISMISSED,
    RULE_CONSUMED,
    RULE_PHASE,
    RULE_ROLE,
    RULE_CONTACT_CAP,
    RULE_ACCOUNT_CAP,
)
# Integer codes of the rules above (0 = eligible).
_CODE = {rule: i + 1 for i, rule in enumerate(HOLD_RULES)}


class ArbitrationConfigError(InvalidInputError):
    """An arbitration config file that cannot be used; the message names the file and key."""


class ArbitrationError(InvalidInputError):
    """Inputs arbitration cannot rank; the message names the table, column and value."""


# --------------------------------------------------------------------------------------------
# Config


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhaseFitWeights(_Frozen):
    """Weight of a phase for an item: it fits the phase, a neighbouring phase, or neither."""

    exact: float = Field(default=1.0, ge=0)
    adjacent: float = Field(default=0.35, ge=0)
    none: float = Field(default=0.0, ge=0)


class RoleFitWeights(_Frozen):
    """Weight of a contact for an item: the item lists the contact's role or not."""

    match: float = Field(default=1.0, ge=0)
    no_match: float = Field(default=0.25, ge=0)


class Weights(_Frozen):
    phase_fit: PhaseFitWeights = PhaseFitWeights()
    role_fit: RoleFitWeights = RoleFitWeights()


class Eligibility(_Frozen):
    consumed_recently_days: float = Field(default=30.0, ge=0)
    dismissed_recently_days: float = Field(default=90.0, ge=0)
    require_phase_fit: bool = True
    min_phase_fit: float = Field(default=0.15, ge=0)
    require_role_fit: bool = True


class ContactPolicy(_Frozen):
    max_actions_per_account_per_week: int = Field(default=6, ge=0)
    max_actions_per_contact_per_week: int = Field(default=2, ge=0)
    distinct_content: bool = True


class ChurnBands(_Frozen):
    """Churn risk thresholds: low below ``medium``, medium below ``high``, high from it on."""

    medium: float = Field(default=0.15, gt=0, lt=1)
    high: float = Field(default=0.4, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ChurnBands:
        if not self.medium < self.high:
            raise ValueError(
                f"medium ({self.medium}) must be below high ({self.high}); expected 0 < medium "
                "< high <= 1"
            )
        return self


class ChurnLever(_Frozen):
    retention_content_types: tuple[str, ...] = (
        "service_play",
        "training",
        "success_story",
        "knowledge_base",
        "onboarding_guide",
    )
    lever_strength: float = Field(default=2.0, ge=0)
    bands: ChurnBands = ChurnBands()


class ArbitrationConfig(_Frozen):
    """A validated arbitration policy (see ``models/config/arbitration.yaml``)."""

    version: int = 1
    policy_name: str = Field(default="ev-greedy-epsilon-v1", min_length=1)
    default_k: int = Field(default=3, ge=1)
    exploration_rate: float = Field(default=0.02, ge=0, le=1)
    weights: Weights = Weights()
    eligibility: Eligibility = Eligibility()
    contact_policy: ContactPolicy = ContactPolicy()
    churn_lever: ChurnLever = ChurnLever()
    held_back_per_rule: int = Field(default=3, ge=0)


def load_arbitration_config(path: Path | str | None = None) -> ArbitrationConfig:
    """Load and validate an arbitration config YAML; ``None`` loads the shipped default.

    Keys left out take the defaults; an unknown key, a wrong type or a value out of range
    raises :class:`ArbitrationConfigError` naming the file, the dotted key and the value.
    """
    file = Path(path) if path is not None else DEFAULT_ARBITRATION_PATH
    try:
        raw = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ArbitrationConfigError(
            f"cannot read arbitration config {file}: {exc.strerror}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ArbitrationConfigError(f"arbitration config {file} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ArbitrationConfigError(
            f"arbitration config {file} must hold a mapping at the top level, got "
            f"{type(raw).__name__}"
        )
    try:
        return ArbitrationConfig.model_validate(raw)
    except ValidationError as exc:
        raise ArbitrationConfigError(
            f"arbitration config {file} is invalid: {_describe(exc)}"
        ) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown key")
        else:
            parts.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def churn_band(p: float, config: ArbitrationConfig) -> ChurnBand:
    """``"low"`` below ``bands.medium``, ``"medium"`` below ``bands.high``, else ``"high"``.
    Raises :class:`ArbitrationError` for a risk outside [0, 1] or NaN."""
    risk = float(p)
    if not 0.0 <= risk <= 1.0:
        raise ArbitrationError(f"churn risk {p!r} is not a probability; expected 0 <= p <= 1")
    bands = config.churn_lever.bands
    if risk < bands.medium:
        return "low"
    if risk < bands.high:
        return "medium"
    return "high"


# --------------------------------------------------------------------------------------------
# Inputs and outputs


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
        _require(frame, table, ["content_id", "ts"])
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
class Action:
    """One ranked next action: send ``content_id`` to ``contact_id`` (rank 1 = best)."""

    content_id: str
    contact_id: str
    role: str
    title: str
    content_type: str
    channel: str
    expected_value: float
    p_response: float
    value: float
    fit: float
    phase_fit: float
    role_fit: float
    lever: float
    propensity: float
    rank: int
    explored: bool


@dataclass(frozen=True)
class HeldBack:
    """A candidate that was not served and the rule that held it back."""

    content_id: str
    contact_id: str
    role: str
    title: str
    content_type: str
    rule: str
    expected_value: float


@dataclass(frozen=True)
class Decision:
    """The ranked actions for one account, the held-back candidates ("why not?", the best
    few per rule, best expected value first), the policy that decided and the churn band.
    ``n_eligible`` is the number of actions that could have filled the top-1 slot (the
    exploration draws among them)."""

    account_id: str
    actions: tuple[Action, ...]
    held_back: tuple[HeldBack, ...]
    policy: str
    churn_band: ChurnBand
    churn_risk: float
    exploration_rate: float
    explored: bool
    n_eligible: int

    def actions_frame(self) -> pd.DataFrame:
        """The actions as a DataFrame, one row per action in rank order."""
        columns = list(Action.__dataclass_fields__)
        return pd.DataFrame([a.__dict__ for a in self.actions], columns=columns)

    def held_back_frame(self) -> pd.DataFrame:
        """The held-back candidates as a DataFrame."""
        columns = list(HeldBack.__dataclass_fields__)
        return pd.DataFrame([h.__dict__ for h in self.held_back], columns=columns)


@dataclass(frozen=True)
class PreparedCatalog:
    """The content catalog as arrays, built once by :func:`prepare_catalog` (serving keeps
    one; :func:`rank_actions` also accepts the DataFrame and prepares it per call)."""

    content_ids: np.ndarray  # object array of str
    position: dict[str, int]  # content_id -> row
    title: np.ndarray
    content_type: np.ndarray
    channel: np.ndarray
    value: np.ndarray
    phase_names: tuple[str, ...]
    phase_fit: np.ndarray  # items x phases bool: the item fits the phase
    phase_adjacent: np.ndarray  # items x phases bool: fits a neighbour, not the phase
    role_index: dict[str, int]
    role_fit: np.ndarray  # items x roles bool
    # retention content types -> items bool (a config rarely changes; isin costs 20 us)
    _retention: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)

    def is_retention(self, content_types: tuple[str, ...]) -> np.ndarray:
        """items bool: the item's content type is one of ``content_types``."""
        mask = self._retention.get(content_types)
        if mask is None:
            mask = np.isin(self.content_type, list(content_types))
            self._retention[content_types] = mask
        return mask


def prepare_catalog(catalog: pd.DataFrame, phase_names: Sequence[str]) -> PreparedCatalog:
    """Arrays of the ``content`` table (content_id, content_type, phases, roles, optional
    title, channel, value — value defaults to 1) for ranking against ``phase_names``.
    Phases an item lists that are not in ``phase_names`` are ignored."""
    _require(catalog, "content catalog", ["content_id", "content_type", "phases", "roles"])
    ids = pd.Index(catalog["content_id"].astype(str))
    if ids.has_duplicates:
        dupes = ids[ids.duplicated()].unique()[:5].tolist()
        raise ArbitrationError(f"table content column 'content_id': duplicate ids {dupes}")
    n = len(catalog)
    phases = tuple(str(p) for p in phase_names)
    phase_pos = {p: j for j, p in enumerate(phases)}
    fit = np.zeros((n, len(phases)), dtype=bool)
    roles: dict[str, int] = {}
    role_pairs: list[tuple[int, int]] = []
    # a loop over ~100 items, once per catalog
    for i, (item_phases, item_roles) in enumerate(
        zip(catalog["phases"], catalog["roles"], strict=True)
    ):
        for p in item_phases:
            if p in phase_pos:
                fit[i, phase_pos[p]] = True
        for r in item_roles:
            role_pairs.append((i, roles.setdefault(str(r), len(roles))))
    role_fit = np.zeros((n, max(len(roles), 1)), dtype=bool)
    if role_pairs:
        rows, cols = np.array(role_pairs).T
        role_fit[rows, cols] = True
    neighbour = np.zeros_like(fit)
    neighbour[:, 1:] |= fit[:, :-1]
    neighbour[:, :-1] |= fit[:, 1:]

    def text(column: str, default: pd.Series) -> np.ndarray:
        values = catalog[column] if column in catalog.columns else default
        return values.astype(str).to_numpy(dtype=object)

    value = (
        catalog["value"].to_numpy(dtype=np.float64, na_value=1.0)
        if "value" in catalog
        else np.ones(n)
    )
    return PreparedCatalog(
        content_ids=ids.to_numpy(dtype=object),
        position={c: i for i, c in enumerate(ids)},
        title=text("title", catalog["content_id"]),
        content_type=catalog["content_type"].astype(str).to_numpy(dtype=object),
        channel=text("channel", pd.Series([""] * n, index=catalog.index)),
        value=value,
        phase_names=phases,
        phase_fit=fit,
        phase_adjacent=neighbour & ~fit,
        role_index=roles,
        role_fit=role_fit,
    )


def _require(frame: pd.DataFrame, table: str, columns: list[str]) -> None:
    present = set(frame.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ArbitrationError(
            f"table {table}: missing columns {missing}; expected {columns}, got "
            f"{list(frame.columns)}"
        )


def _positions(values: pd.Series | Sequence[Any], position: dict[str, int]) -> np.ndarray:
    """Row of each value in ``position`` (-1 if absent or null). A dict lookup beats
    Index.get_indexer at the few hundred values of one account."""
    items = values.tolist() if isinstance(values, pd.Series) else values
    return np.fromiter(map(position.get, items, repeat(-1)), dtype=np.int64, count=len(items))


# --------------------------------------------------------------------------------------------
# Ranking


@dataclass(frozen=True)
class PreparedCandidates:
    """An account's candidates and contacts as arrays, built once by
    :func:`prepare_candidates` (serving keeps them with the account's cached predictions;
    :func:`rank_actions` also accepts the DataFrames and prepares them per call)."""

    p: np.ndarray  # candidate -> P(response), NaN = not a candidate
    item: np.ndarray  # candidate -> catalog row
    contact: np.ndarray  # candidate -> contact row
    contact_ids: np.ndarray  # object array of str
    contact_roles: np.ndarray  # object array of str ('' for a contact without a role)
    contact_position: dict[str, int]
    role_code: np.ndarray  # contact -> column of the catalog's role_fit (-1: no item lists it)
    catalog_size: int


def prepare_candidates(
    candidates: pd.DataFrame,
    contacts: pd.DataFrame,
    catalog: PreparedCatalog,
    account_id: str = "",
) -> PreparedCandidates:
    """``candidates`` (contact_id, content_id, p_response) of the account's ``contacts``
    (contact_id, role) as integer codes against ``catalog``. Raises
    :class:`ArbitrationError` for a content id not in the catalog or a contact id not among
    the contacts (``account_id`` names the account in the message)."""
    _require(candidates, "candidates", ["contact_id", "content_id", "p_response"])
    _require(contacts, "contacts", ["contact_id", "role"])
    p = candidates["p_response"].to_numpy(dtype=np.float64, na_value=np.nan)
    item = _positions(candidates["content_id"], catalog.position)
    if (item < 0).any():
        bad = candidates["content_id"][item < 0].unique()[:5].tolist()
        raise ArbitrationError(
            f"table candidates column 'content_id': values {bad} are not in the content catalog"
        )
    contact_ids = contacts["contact_id"].astype(str).to_numpy(dtype=object)
    contact_position = {c: i for i, c in enumerate(contact_ids.tolist())}
    contact_roles = np.array(
        ["" if pd.isna(r) else str(r) for r in contacts["role"].tolist()], dtype=object
    )
    contact = _positions(candidates["contact_id"], contact_position)
    if (contact < 0).any():
        bad = candidates["contact_id"][contact < 0].unique()[:5].tolist()
        raise ArbitrationError(
            f"table candidates column 'contact_id': values {bad} are not contacts of account "
            f"{account_id!r}"
        )
    role_code = np.array([catalog.role_index.get(r, -1) for r in contact_roles], dtype=np.int64)
    return PreparedCandidates(
        p=p,
        item=item,
        contact=contact,
        contact_ids=contact_ids,
        contact_roles=contact_roles,
        contact_position=contact_position,
        role_code=role_code,
        catalog_size=len(catalog.content_ids),
    )


def rank_actions(
    context: AccountContext,
    candidates: pd.DataFrame | PreparedCandidates,
    catalog: pd.DataFrame | PreparedCatalog,
    config: ArbitrationConfig,
    *,
    k: int,
    rng: np.random.Generator,
    now: pd.Timestamp,
    explore: bool | None = None,
) -> Decision:
    """The top ``k`` next actions for ``context``'s account, held-back candidates and the
    policy's propensities.

    ``candidates`` has one row per (contact_id, content_id) with ``p_response`` (the
    next-content model's probability; rows with NaN are not candidates). Every content_id
    must be in ``catalog`` and every contact_id in ``context.contacts``. Candidates prepared
    by :func:`prepare_candidates` (against the same catalog and contacts) skip that
    preparation. ``now`` is the
    decision time: "recently" and "this week" count back from it.

    Returns at most ``k`` actions, fewer when fewer pass the rules and caps; equal expected
    values keep the candidates' row order. Caps count distinct (contact, content) actions
    served in the 7 days before ``now``; an action already among them may be served again
    without using a slot, so repeated requests in one week return a stable list.

    ``explore`` None draws the epsilon-greedy coin from ``rng`` (probability
    ``config.exploration_rate``); True / False force its outcome (for callers that draw it
    themselves at the configured rate). Propensities are always those of the configured
    mixture: set ``exploration_rate`` to 0 for a purely greedy policy.
    """
    if k < 1:
        raise ArbitrationError(f"k = {k}; expected at least 1 action")
    risk = float(context.churn_risk)
    band = churn_band(risk, config)
    phases = tuple(str(p) for p in context.phase_names)
    cat = catalog if isinstance(catalog, PreparedCatalog) else prepare_catalog(catalog, phases)
    if cat.phase_names != phases:
        raise ArbitrationError(
            f"the prepared catalog's phases {list(cat.phase_names)} differ from the "
            f"context's phase_names {list(phases)}"
        )
    proba = np.asarray(context.phase_proba, dtype=np.float64).ravel()
    if len(proba) != len(phases):
        raise ArbitrationError(
            f"phase_proba has {len(proba)} values for {len(phases)} phase_names {list(phases)}"
        )
    now_ns = to_ns(now)
    eps = config.exploration_rate
    w = config.weights
    el = config.eligibility
    policy = config.contact_policy

    prepared = (
        candidates
        if isinstance(candidates, PreparedCandidates)
        else prepare_candidates(candidates, _contacts_of(context), cat, context.account_id)
    )
    if prepared.catalog_size != len(cat.content_ids):
        raise ArbitrationError(
            f"the prepared candidates index a catalog of {prepared.catalog_size} items; this "
            f"catalog has {len(cat.content_ids)}"
        )
    p_all, item_all, c_all = prepared.p, prepared.item, prepared.contact
    contact_ids, contact_roles = prepared.contact_ids, prepared.contact_roles
    contact_position = prepared.contact_position
    n_contacts = len(contact_ids)
    keep = ~np.isnan(p_all)
    if context.contact_id is not None:
        keep &= c_all == contact_position.get(context.contact_id, -2)
    if context.role is not None:
        keep &= contact_roles[c_all] == context.role
    rows = np.flatnonzero(keep)
    item, contact, p = item_all[rows], c_all[rows], np.clip(p_all[rows], 0.0, 1.0)

    # ---- expected value
    weight = np.where(
        cat.phase_fit,
        w.phase_fit.exact,
        np.where(cat.phase_adjacent, w.phase_fit.adjacent, w.phase_fit.none),
    )
    item_phase_fit = weight @ proba
    cand_role = prepared.role_code[contact]
    role_match = (cand_role >= 0) & cat.role_fit[item, np.maximum(cand_role, 0)]
    phase_fit = item_phase_fit[item]
    role_fit = np.where(role_match, w.role_fit.match, w.role_fit.no_match)
    retention = cat.is_retention(config.churn_lever.retention_content_types)
    lever = np.where(retention[item], 1.0 + config.churn_lever.lever_strength * risk, 1.0)
    value = cat.value[item]
    fit = phase_fit * role_fit
    ev = p * value * fit * lever

    # ---- eligibility: assign rules from the lowest precedence up, so the first one wins
    rule = np.zeros(len(rows), dtype=np.int8)
    if el.require_role_fit:
        rule[~role_match] = _CODE[RULE_ROLE]
    if el.require_phase_fit:
        rule[phase_fit < el.min_phase_fit] = _CODE[RULE_PHASE]
    consumed = _recent_pairs(
        context.consumed, "consumed", cat, contact_position, now_ns, el.consumed_recently_days
    )
    rule[consumed[contact, item] | consumed[n_contacts, item]] = _CODE[RULE_CONSUMED]
    dismissed = _recent_items(context.dismissed, cat, now_ns, el.dismissed_recently_days)
    rule[dismissed[item]] = _CODE[RULE_DISMISSED]
    if context.channel is not None:
        rule[cat.channel[item] != context.channel] = _CODE[RULE_CHANNEL]

    # ---- contact policy: distinct (contact, content) pairs served this week
    served = _recent_pairs(
        context.served_last_week, "served_last_week", cat, contact_position, now_ns, WEEK_DAYS
    )
    account_left = policy.max_actions_per_account_per_week - int(served.sum())
    contact_left = policy.max_actions_per_contact_per_week - served[:n_contacts].sum(axis=1)
    already = served[contact, item]

    eligible = np.flatnonzero(rule == 0)
    order = eligible[np.argsort(-ev[eligible], kind="stable")]
    can_start = already[order] | ((contact_left[contact[order]] > 0) & (account_left > 0))
    capped_up_front = order[~can_start]
    rule[capped_up_front] = np.where(
        contact_left[contact[capped_up_front]] <= 0,
        _CODE[RULE_CONTACT_CAP],
        _CODE[RULE_ACCOUNT_CAP],
    )
    servable = order[can_start]  # the actions that could fill the top-1 slot, best first

    ranker = _Greedy(
        contact=contact[servable].tolist(),
        item=item[servable].tolist(),
        already=already[servable].tolist(),
        contact_left=np.maximum(contact_left, 0).tolist(),
        account_left=max(account_left, 0),
        distinct=policy.distinct_content,
    )
    n = len(servable)
    explored = False
    picks: list[int] = []
    propensity: list[float] = []
    if n:
        explored = bool(rng.random() < eps) if explore is None else bool(explore)
        first = int(rng.integers(n)) if explored else 0
        rest, capped = ranker.fill(first, k - 1, collect=True)
        for pos, code in capped:
            rule[servable[pos]] = code
        picks = [first, *rest]
        propensity = _propensities(ranker, picks, k, eps)

    actions = tuple(
        Action(
            content_id=str(cat.content_ids[item[r]]),
            contact_id=str(contact_ids[contact[r]]),
            role=str(contact_roles[contact[r]]),
            title=str(cat.title[item[r]]),
            content_type=str(cat.content_type[item[r]]),
            channel=str(cat.channel[item[r]]),
            expected_value=float(ev[r]),
            p_response=float(p[r]),
            value=float(value[r]),
            fit=float(fit[r]),
            phase_fit=float(phase_fit[r]),
            role_fit=float(role_fit[r]),
            lever=float(lever[r]),
            propensity=propensity[slot],
            rank=slot + 1,
            explored=explored and slot == 0,
        )
        for slot, r in enumerate(int(servable[pos]) for pos in picks)
    )
    held = _held_back(
        rule, ev, item, contact, cat, contact_ids, contact_roles, config.held_back_per_rule
    )
    return Decision(
        account_id=context.account_id,
        actions=actions,
        held_back=held,
        policy=config.policy_name,
        churn_band=band,
        churn_risk=risk,
        exploration_rate=eps,
        explored=explored,
        n_eligible=n,
    )


def _contacts_of(context: AccountContext) -> pd.DataFrame:
    if context.contacts is None:
        raise ArbitrationError(
            f"account {context.account_id!r}: candidates given as a DataFrame need the "
            "context's contacts (contact_id, role)"
        )
    return context.contacts


def _recent_pairs(
    frame: pd.DataFrame | Recent | None,
    table: str,
    cat: PreparedCatalog,
    contact_position: dict[str, int],
    now_ns: int,
    days: float,
) -> np.ndarray:
    """(contacts + 1) x items bool: the contact had a row for the item in the ``days`` before
    now (inclusive); the last row collects rows without a known contact. Rows whose content
    is not in the catalog are ignored (they cannot be candidates)."""
    n_contacts = len(contact_position)
    out = np.zeros((n_contacts + 1, len(cat.content_ids)), dtype=bool)
    rows = Recent.of(frame, table)
    if len(rows) == 0:
        return out
    age = now_ns - rows.ts_ns
    recent = (age >= 0) & (age <= days * NS_PER_DAY)
    item = _positions(rows.content_id, cat.position)
    if rows.contact_id is not None:
        c = _positions(rows.contact_id, contact_position)
        c = np.where(c < 0, n_contacts, c)
    else:
        c = np.full(len(rows), n_contacts)
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
    item = _positions(rows.content_id, cat.position)
    sel = (age >= 0) & (age <= days * NS_PER_DAY) & (item >= 0)
    out[item[sel]] = True
    return out


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

    def scan(
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
                        capped.append((pos, _CODE[RULE_CONTACT_CAP]))
                    continue
                if account <= 0:
                    if collect:
                        capped.append((pos, _CODE[RULE_ACCOUNT_CAP]))
                    elif self._already_after[pos] == 0:
                        break  # nothing further can fill a slot
                    continue
                left[c] -= 1
                account -= 1
            picks.append(pos)
            if self.distinct:
                used.add(it)
        return picks, capped


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
    n = len(ranker.item)
    already = np.asarray(ranker.already, dtype=bool)
    contact = np.asarray(ranker.contact, dtype=np.int64)
    item = np.asarray(ranker.item, dtype=np.int64)
    left = np.asarray(ranker.contact_left, dtype=np.int64)
    n_items = int(item.max()) + 2
    n_contacts = len(left) + 1
    # reference fill per draw: index 0 = already served (no slot used), 1 = uses a slot,
    # 2 + c = uses a slot of saturated contact c
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
    # a draw whose content (position) is among its reference's picks needs its own fill
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
    out: list[tuple[list[int], int]] = []
    sizes = np.bincount(ref_of[~affected], minlength=len(references))
    out.extend((ref, int(size)) for ref, size in zip(references, sizes.tolist(), strict=True))
    rows = np.flatnonzero(affected)
    if len(rows):
        # affected draws with the same slot use, contact and content give the same fill
        key = (ref_of[rows] * n_contacts + contact[rows]) * n_items + item[rows]
        if not ranker.distinct:
            key = key * (n + 1) + rows
        _, first_of, size = np.unique(key, return_index=True, return_counts=True)
        for s, m in zip(rows[first_of].tolist(), size.tolist(), strict=True):
            out.append((ranker.fill(s, slots)[0], m))
    return out


def _held_back(
    rule: np.ndarray,
    ev: np.ndarray,
    item: np.ndarray,
    contact: np.ndarray,
    cat: PreparedCatalog,
    contact_ids: np.ndarray,
    contact_roles: np.ndarray,
    per_rule: int,
) -> tuple[HeldBack, ...]:
    """The best ``per_rule`` held-back candidates of each rule (one per content item), rules
    in precedence order, best expected value first within a rule."""
    out: list[HeldBack] = []
    if per_rule == 0:
        return ()
    for name in HOLD_RULES:
        rows = np.flatnonzero(rule == _CODE[name])
        if not len(rows):
            continue
        rows = rows[np.argsort(-ev[rows], kind="stable")]
        _, first = np.unique(item[rows], return_index=True)
        rows = rows[np.sort(first)][:per_rule]
        out.extend(
            HeldBack(
                content_id=str(cat.content_ids[item[r]]),
                contact_id=str(contact_ids[contact[r]]),
                role=str(contact_roles[contact[r]]),
                title=str(cat.title[item[r]]),
                content_type=str(cat.content_type[item[r]]),
                rule=name,
                expected_value=float(ev[r]),
            )
            for r in rows.tolist()
        )
    return tuple(out)


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision as plain JSON-able data (for logs and API responses)."""
    return {
        "account_id": decision.account_id,
        "policy": decision.policy,
        "churn_band": decision.churn_band,
        "churn_risk": decision.churn_risk,
        "exploration_rate": decision.exploration_rate,
        "explored": decision.explored,
        "n_eligible": decision.n_eligible,
        "actions": [a.__dict__ for a in decision.actions],
        "held_back": [h.__dict__ for h in decision.held_back],
    }
