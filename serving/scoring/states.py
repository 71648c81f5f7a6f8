"""Computing accounts' states (the cold path): features, the three models' predictions and
the reasons of the greedy answer, for many accounts at once.

:func:`compute_states` runs the feature pipeline once for all accounts of the data and each
model once per chunk of accounts (the fixed costs of pandas and of a LightGBM call are most
of one account's cost), then assembles every account's :class:`AccountState`.
:func:`compute_state` (one account, the online cold path) is the same function on one
account's rows, so a state computed alone equals the one computed with others: a worklist
served from stored states answers as it would from fresh ones.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.pipeline import select_accounts
from features.schema import JourneyData
from features.timestamps import NS_PER_DAY
from models import next_content as nc
from models.arbitration import (
    PreparedCandidates,
    Recent,
    addressees,
    churn_band,
    prepare_candidates,
    prepare_contact_grid,
    prepare_grid,
)
from models.churn import calibrate
from models.contract import CHURN, NEXT_CONTENT, PHASE
from models.explain import Reason, contributions_for, reason_codes, why_now
from models.explain.words import is_missing
from serving.model_input import PREDICT_THREADS
from serving.model_set import ModelSet
from serving.scoring.cache import AccountState, ipc_rows
from serving.scoring.online import CandidateRows, Request, action_reasons, rank
from serving.scoring.predict import (
    MAX_REASONS,
    Encoded,
    ScoringSetup,
    SingleThreaded,
    booster,
    churn_raw,
    current_contacts,
    encode_frame,
    encode_values,
    outcome_probabilities,
)
from serving.scoring.rows import FrameRows, RowValues

# Accounts whose candidates are scored in one call (about 5 contacts x the catalog each).
STATE_CHUNK_ACCOUNTS = 100


def compute_state(
    setup: ScoringSetup,
    models: ModelSet,
    data: JourneyData,
    account_id: str,
    now: pd.Timestamp,
    *,
    ttl_ns: int,
    explain_k: int = 0,
) -> AccountState | None:
    """Returns the account's state as of ``now``, or None when ``data`` has no account row
    for it or it is created after ``now``. ``ttl_ns`` is how long the state will be served
    (it bounds the consumed history kept); ``explain_k``: the greedy actions explained up
    front number at least this many (the request's k) plus one."""
    one = select_accounts(data, [account_id])
    if one.accounts.empty:
        return None
    return compute_states(setup, models, one, now, ttl_ns=ttl_ns, explain_k=explain_k).get(
        account_id
    )


def compute_states(
    setup: ScoringSetup,
    models: ModelSet,
    data: JourneyData,
    now: pd.Timestamp,
    *,
    ttl_ns: int,
    chunk_accounts: int = STATE_CHUNK_ACCOUNTS,
    for_store: bool = False,
    explain_k: int = 0,
) -> dict[str, AccountState]:
    """Returns account_id -> state as of ``now`` for every account of ``data`` existing at
    ``now`` (see :func:`compute_state`). ``for_store``: each state keeps the next-content
    model's account columns as Arrow IPC (what the store keeps, converted for the chunk at
    once) instead of its pickled feature row."""
    frame = setup.features(data, now, models.attributes)
    if frame is None:
        return {}
    frame = frame.reset_index(drop=True)
    contacts = current_contacts(data.contacts, now)
    tp = data.touchpoints
    rows = _AccountRows(
        contacts,
        contacts.groupby(contacts["account_id"].astype(str), sort=False).indices,
        tp,
        tp.groupby(tp["account_id"].astype(str), sort=False).indices,
        # Older rows cannot count as consumed recently while the state is served.
        now.value - int(setup.config.eligibility.consumed_recently_days * NS_PER_DAY) - ttl_ns,
    )
    out: dict[str, AccountState] = {}
    for lo in range(0, len(frame), chunk_accounts):
        part = frame.iloc[lo : lo + chunk_accounts].reset_index(drop=True)
        out.update(
            chunk_states(setup, models, part, rows, now, for_store=for_store, explain_k=explain_k)
        )
    return out


class AccountRows(Protocol):
    """What a state reads of an account's rows besides its features: the addressees
    (``models.arbitration.addressees``) and the content consumed recently."""

    def addressees(self, account_id: str) -> pd.DataFrame: ...

    def consumed(self, account_id: str) -> Recent: ...


class ValueRows(Protocol):
    """What a state from feature values reads of the account besides them: its addressees
    as ids and roles (``models.arbitration.addressees``: the account-level one, without a
    role, when it has no contact) and the content consumed recently."""

    def addressee_ids(self, account_id: str) -> tuple[list[str], list[str | None]]: ...

    def consumed(self, account_id: str) -> Recent: ...


class _AccountRows:
    """Each account's current contacts and touchpoints, by position in the frames."""

    def __init__(
        self,
        contacts: pd.DataFrame,
        contact_rows: Mapping[Any, Any],
        touchpoints: pd.DataFrame,
        touchpoint_rows: Mapping[Any, Any],
        horizon_ns: int,
    ) -> None:
        self.contacts = contacts
        self.contact_rows = contact_rows
        self.touchpoints = touchpoints
        self.touchpoint_rows = touchpoint_rows
        self.horizon_ns = horizon_ns

    def addressees(self, account_id: str) -> pd.DataFrame:
        at = self.contact_rows.get(account_id, np.zeros(0, dtype=np.int64))
        return addressees(self.contacts.iloc[at].reset_index(drop=True))

    def consumed(self, account_id: str) -> Recent:
        at = self.touchpoint_rows.get(account_id, np.zeros(0, dtype=np.int64))
        return consumed_since(self.touchpoints.iloc[at], self.horizon_ns)


def chunk_states(
    setup: ScoringSetup,
    models: ModelSet,
    part: pd.DataFrame,
    rows: AccountRows,
    now: pd.Timestamp,
    *,
    for_store: bool,
    explain_k: int = 0,
) -> dict[str, AccountState]:
    """The states of the accounts of ``part`` (feature rows of existing accounts), the
    greedy top ``max(default_k, explain_k)`` + 1 actions explained."""
    ids = part["account_id"].astype(str).tolist()
    contacts = [rows.addressees(a) for a in ids]
    computed = _candidates(setup, models, part, contacts)
    # What explaining an action later reads: the served next-content model's account
    # columns (not the whole feature row: a third of the bytes, and less to select then).
    account = setup.account_frame(models, part)
    ipc = ipc_rows(account) if for_store else None
    features = (
        ipc
        if ipc is not None
        else [
            pickle.dumps(account.iloc[[r]], protocol=pickle.HIGHEST_PROTOCOL)
            for r in range(len(part))
        ]
    )
    states = _assemble(
        setup,
        models,
        _Accounts(ids, encode_frame(models, part), [RowValues(part, r) for r in range(len(part))]),
        [
            _prepared(setup, p, mine, account_id, p_trial)
            for (p, _, p_trial), mine, account_id in zip(computed, contacts, ids, strict=True)
        ],
        rows,
        now,
        features=features,
        features_ipc=ipc is not None,
    )
    out: dict[str, AccountState] = {}
    for r, (account_id, state) in enumerate(zip(ids, states, strict=True)):
        # The greedy answer is what nearly every request serves: explain it now, off the
        # warm path (one pred_contrib call for its rows, which are at hand), for the
        # request's k when it asks for more than the default (a request computing the
        # state would otherwise rebuild the rows to explain the rest), with one action
        # more: an explored top slot moves the greedy ones down by one.
        k = max(setup.config.default_k, explain_k) + 1
        greedy = Request(account_id, now, k, np.random.default_rng(0), explore=False)
        action_reasons(setup, models, state, rank(setup, state, greedy).actions, computed[r][1])
        out[account_id] = state
    return out


def values_state(
    setup: ScoringSetup,
    models: ModelSet,
    account_id: str,
    values: Mapping[str, Any],
    rows: ValueRows,
    now: pd.Timestamp,
) -> tuple[AccountState, CandidateRows]:
    """One account's state from its feature values (column -> plain value, as
    ``ScoringSetup.features`` gives them in its row) with no action explained yet, and the
    candidate rows it was computed from (the request explains the actions it shows from
    them: ``serving.scoring.online.decide``). Equal to :func:`chunk_states`' state of the
    account's row, on arrays instead of frames (one account's frames cost milliseconds)."""
    contact_ids, roles = rows.addressee_ids(account_id)
    account = setup.account_values(models, values)
    p_response, computed, p_trial = _candidates_of_values(
        setup, models, account, contact_ids, roles
    )
    if p_response is None:
        contacts = pd.DataFrame({"contact_id": contact_ids, "role": roles}, dtype=object)
        candidates = _prepared(setup, None, contacts, account_id)
    else:
        candidates = prepare_contact_grid(
            p_response, contact_ids, roles, setup.catalog, p_challenger=p_trial
        )
    state = _assemble(
        setup,
        models,
        _Accounts([account_id], encode_values(models, values), [values]),
        [candidates],
        rows,
        now,
        features=[pickle.dumps(account, protocol=pickle.HIGHEST_PROTOCOL)],
        features_ipc=False,
    )[0]
    return state, computed


@dataclass(frozen=True)
class _Accounts:
    """Accounts' ids, their rows encoded for the account-row models and their values."""

    ids: list[str]
    encoded: Encoded
    values: Sequence[Mapping[str, Any]]


def _assemble(
    setup: ScoringSetup,
    models: ModelSet,
    accounts: _Accounts,
    candidates: Sequence[PreparedCandidates],
    rows: AccountRows | ValueRows,
    now: pd.Timestamp,
    *,
    features: Sequence[bytes],
    features_ipc: bool,
) -> list[AccountState]:
    """The accounts' states: phase probabilities, churn risk, outcomes and their reasons,
    the prepared ``candidates``, the consumed history and ``features``; no action
    explained."""
    encoded, values = accounts.encoded, accounts.values
    proba = setup.phase_proba(models, encoded)
    risk = calibrate(churn_raw(models, encoded), dict(models.calibration))
    outcomes = outcome_probabilities(models, encoded)
    no_reasons: list[tuple[Reason, ...]] = [()] * encoded.n
    phase_reasons = no_reasons
    if models.phase is not None:
        # Reasons explain the model's own class codes (not taxonomy positions).
        codes = np.argmax(setup.phase_codes(models, proba), axis=1)
        if len(models.phase_classes) == 2:  # binary: contributions point to class 1
            toward = [1 if c == 1 else -1 for c in codes.tolist()]
            phase_reasons = batch_reasons(setup, models, PHASE, encoded, values, directions=toward)
        else:
            phase_reasons = batch_reasons(setup, models, PHASE, encoded, values, classes=codes)
    churn_reasons = no_reasons
    bands: list[str | None] = [None] * encoded.n
    if models.churn is not None:
        bands = [churn_band(float(r), setup.config) for r in risk]
        directions = [1 if b != "low" else -1 for b in bands]
        churn_reasons = batch_reasons(setup, models, CHURN, encoded, values, directions=directions)
    return [
        AccountState(
            as_of=now,
            as_of_ns=int(now.value),
            features=features[r],
            features_ipc=features_ipc,
            phase_proba=proba[r],
            phase_reasons=phase_reasons[r],
            churn_risk=float(risk[r]),
            churn_reasons=churn_reasons[r],
            candidates=candidates[r],
            consumed=rows.consumed(account_id),
            outcomes={name: float(p[r]) for name, p in outcomes.items()},
            why_now=why_now(
                values[r],
                phase=setup.phases[int(np.argmax(proba[r]))] if models.phase is not None else None,
                phases=setup.phases,
                churn_band=bands[r],
                churn_risk=float(risk[r]) if models.churn is not None else None,
                horizon_days=models.horizon_days.get(CHURN),
                labels=setup.labels,
            ),
        )
        for r, account_id in enumerate(accounts.ids)
    ]


def consumed_since(touchpoints: pd.DataFrame, horizon_ns: int) -> Recent:
    """Returns the content touchpoints at or after ``horizon_ns`` as arbitration's history."""
    ts_ns = touchpoints["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    keep = touchpoints["content_id"].notna().to_numpy(dtype=bool) & (ts_ns >= horizon_ns)
    return Recent(
        content_id=touchpoints["content_id"].to_numpy(dtype=object)[keep].tolist(),
        ts_ns=ts_ns[keep],
        contact_id=touchpoints["contact_id"].to_numpy(dtype=object)[keep].tolist(),
    )


def batch_reasons(
    setup: ScoringSetup,
    models: ModelSet,
    name: str,
    encoded: Encoded,
    values: Sequence[Mapping[str, Any]],
    *,
    classes: np.ndarray | None = None,
    directions: Sequence[int] | None = None,
) -> list[tuple[Reason, ...]]:
    """Returns the top reasons (``pred_contrib``) of the phase or churn model's output for
    each row of ``encoded`` (feature values ``values[r]``): of the row's class ``classes[r]``
    for the phase model, in direction ``directions[r]`` for churn. One contributions call
    per class."""
    spec = models.inputs[name]
    estimator = {PHASE: models.phase, CHURN: models.churn}[name]
    x = encoded.x[name]
    groups = [None] if classes is None else sorted({int(c) for c in classes})
    definitions = {**setup.definitions, **models.attribute_definitions}
    out: list[tuple[Reason, ...]] = [()] * encoded.n
    for c in groups:
        at = np.arange(encoded.n) if c is None else np.flatnonzero(classes == c)
        model = booster(estimator)
        contrib = (
            contributions_for(SingleThreaded(model), x[at], class_index=c)
            if c is None or model.num_model_per_iteration() == 1
            else setup.class_trees.contributions(model, x[at], c)
        )
        for j, r in enumerate(at.tolist()):
            out[r] = tuple(
                reason_codes(
                    contrib[j],
                    list(spec.columns),
                    values[r],
                    top=MAX_REASONS,
                    direction=1 if directions is None else directions[r],
                    definitions=definitions,
                    labels=setup.labels,
                )
            )
    return out


def _candidates(
    setup: ScoringSetup, models: ModelSet, part: pd.DataFrame, contacts: Sequence[pd.DataFrame]
) -> list[tuple[np.ndarray | None, CandidateRows, np.ndarray | None]]:
    """Per account of ``part``: P(response) of every addressee x catalog item
    (contact-major; None: no actions to rank), the candidate rows behind it and the
    challenger's P(response) of the same (None: no version under trial). One next-content
    call (per model) for all of them."""
    n_items = len(setup.content)
    counts = np.array([len(c) for c in contacts], dtype=np.int64)
    # No actions to rank: without a model the answer says why; an empty catalog has none.
    if models.next_content is None or n_items == 0:
        return [(*_none(), None)] * len(contacts)
    roles = [r for c in contacts for r in c["role"].astype(object).tolist()]
    decisions = setup.account_frame(models, part).iloc[np.repeat(np.arange(len(part)), counts)]
    rows = nc.candidate_features(
        decisions.reset_index(drop=True),
        pd.Series(roles, dtype=object),
        setup.content,
        setup.taxonomy,
        catalog=setup.catalog_arrays,
    )
    x = models.inputs[NEXT_CONTENT].encode(rows)
    p = _p_response(setup, models, x)
    trial = models.challenger
    p_trial = (
        None
        if trial is None
        else _p_response(setup, trial, trial.inputs[NEXT_CONTENT].encode(rows))
    )
    out: list[tuple[np.ndarray | None, CandidateRows, np.ndarray | None]] = []
    ends = np.cumsum(counts) * n_items
    for r, mine in enumerate(contacts):
        lo, hi = int(ends[r] - counts[r] * n_items), int(ends[r])
        ids = mine["contact_id"].astype(str).tolist()
        position = {c: i for i, c in enumerate(ids)}
        out.append(
            (
                p[lo:hi],
                CandidateRows(FrameRows(rows, lo), x[lo:hi], position),
                None if p_trial is None else p_trial[lo:hi],
            )
        )
    return out


def _candidates_of_values(
    setup: ScoringSetup,
    models: ModelSet,
    account: Mapping[str, Any],
    contact_ids: Sequence[str],
    contact_roles: Sequence[str | None],
) -> tuple[np.ndarray | None, CandidateRows, np.ndarray | None]:
    """:func:`_candidates` of one account given as its account values and its addressees'
    ids and roles, on arrays. A candidate row depends on the contact only through the
    role, so each distinct role's rows are built and predicted once (contacts sharing a
    role share them)."""
    if models.next_content is None or len(setup.content) == 0:
        return (*_none(), None)
    roles = [None if is_missing(r) else str(r) for r in contact_roles]
    distinct = list(dict.fromkeys(roles))
    block = {r: i for i, r in enumerate(distinct)}
    at = np.array([block[r] for r in roles], dtype=np.int64)
    x, rows = setup.candidate_encoder(models).encode(account, distinct)
    p = _p_response(setup, models, x).reshape(len(distinct), len(setup.content))[at].ravel()
    position = {c: int(b) for c, b in zip(contact_ids, at.tolist(), strict=True)}
    trial = models.challenger
    p_trial = None
    if trial is not None:
        x_trial, _ = setup.candidate_encoder(trial).encode(account, distinct)
        by_role = _p_response(setup, trial, x_trial).reshape(len(distinct), len(setup.content))
        p_trial = by_role[at].ravel()
    return p, CandidateRows(rows, x, position), p_trial


def _p_response(setup: ScoringSetup, models: ModelSet, x: np.ndarray) -> np.ndarray:
    """P(response) of each candidate row of ``x`` (contact-major blocks of the catalog),
    as the uplift over the "no action" control for a model trained with one."""
    n_items = len(setup.content)
    p = np.asarray(
        booster(models.next_content).predict(x, num_threads=PREDICT_THREADS), dtype=np.float64
    )
    by_item = p.reshape(len(p) // n_items, n_items)
    return nc.uplift_over_control(
        by_item, setup.catalog.content_ids, models.run_params.get(NEXT_CONTENT, {})
    ).ravel()


def _none() -> tuple[None, CandidateRows]:
    return None, CandidateRows(FrameRows(pd.DataFrame()), np.zeros((0, 0)), {})


def _prepared(
    setup: ScoringSetup,
    p: np.ndarray | None,
    contacts: pd.DataFrame,
    account_id: str,
    p_challenger: np.ndarray | None = None,
) -> PreparedCandidates:
    if p is None:
        return prepare_candidates(_no_candidates(), contacts, setup.catalog, account_id)
    return prepare_grid(p, contacts, setup.catalog, p_challenger)


def _no_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_id": pd.Series(dtype=object),
            "content_id": pd.Series(dtype=object),
            "p_response": pd.Series(dtype=np.float64),
        }
    )
