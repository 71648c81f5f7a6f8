"""Scoring every account at once (for CRM sync): one row per account with its top-k actions.

Features and the three models run for all accounts together (the next-content model in
chunks of accounts, to bound memory); arbitration runs per account by design, greedily (no
exploration). The phase probabilities and churn risk equal the online ones for the same
account and time: both come from :class:`serving.scoring.predict.ScoringSetup`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.schema import JourneyData
from models import next_content as nc
from models.arbitration import ACCOUNT_LEVEL, AccountContext, rank_actions
from models.churn import calibrate
from models.contract import NEXT_CONTENT
from serving.model_set import ModelSet
from serving.scoring.predict import (
    ScoringSetup,
    booster,
    churn_raw,
    current_contacts,
    encode_frame,
    outcome_probabilities,
)


@dataclass(frozen=True)
class _Scored:
    """The model outputs of every account (row r of ``frame``) and what arbitration reads
    per account: its contacts (``contact_rows[r]`` into ``contacts``, P(response) rows of
    ``p``), its content touchpoints (``touchpoint_rows[account_id]`` into ``touchpoints``)
    and its owner."""

    account_ids: list[str]
    proba: np.ndarray
    risk: np.ndarray
    contacts: pd.DataFrame
    contact_rows: Mapping[Hashable, Any]  # account row -> positions in contacts
    p: np.ndarray
    touchpoints: pd.DataFrame
    touchpoint_rows: Mapping[Hashable, Any]  # account_id -> positions in touchpoints
    owner: pd.Series
    outcomes: Mapping[str, np.ndarray]  # outcome name -> probability per account
    has_phase: bool
    has_risk: bool
    has_actions: bool


def score_batch(
    setup: ScoringSetup,
    models: ModelSet,
    data: JourneyData,
    now: pd.Timestamp,
    k: int,
    *,
    chunk_accounts: int,
) -> pd.DataFrame:
    """Returns one row per account existing at ``now`` (a UTC time): account_id,
    owner_rep_id, phase, phase_probability, churn_risk, churn_band, and for rank 1..k
    ``action_<r>_content_id`` / ``action_<r>_contact_id`` / ``action_<r>_expected_value``."""
    out_columns = batch_columns(k, outcomes=sorted(models.outcomes))
    frame = setup.features(data, now, models.attributes)
    if frame is None:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in out_columns})
    scored = _score_all(setup, models, data, frame, now, chunk_accounts)
    rng = np.random.default_rng(0)
    # a per-account loop: arbitration is per account by design
    records = [_record(setup, scored, r, now, k, rng) for r in range(len(scored.account_ids))]
    return pd.DataFrame(records, columns=out_columns)


def batch_columns(k: int, *, outcomes: Sequence[str] = ()) -> list[str]:
    """Returns the columns of :func:`score_batch`'s frame for ``k`` actions and the
    binary ``outcomes`` served (``outcome_<name>``: its probability)."""
    cols = [
        "account_id",
        "owner_rep_id",
        "phase",
        "phase_probability",
        "churn_risk",
        "churn_band",
        *(f"outcome_{name}" for name in outcomes),
    ]
    for slot in range(1, k + 1):
        cols += [
            f"action_{slot}_content_id",
            f"action_{slot}_contact_id",
            f"action_{slot}_expected_value",
        ]
    return cols


def _score_all(
    setup: ScoringSetup,
    models: ModelSet,
    data: JourneyData,
    frame: pd.DataFrame,
    now: pd.Timestamp,
    chunk_accounts: int,
) -> _Scored:
    """Returns the three models' outputs for every account of ``frame`` and its contacts,
    with the rows arbitration reads per account grouped."""
    rows = encode_frame(models, frame)
    proba = setup.phase_proba(models, rows, threads=0)
    risk = calibrate(churn_raw(models, rows, threads=0), dict(models.calibration))
    contacts = current_contacts(data.contacts, now)
    account_ids = frame["account_id"].astype(str).to_numpy(dtype=object)
    c_row = pd.Index(account_ids).get_indexer(pd.Index(contacts["account_id"].astype(str)))
    contacts = contacts.loc[c_row >= 0].reset_index(drop=True)
    contacts, c_row = _with_account_level(contacts, c_row[c_row >= 0], account_ids)
    p = _p_response(setup, models, frame, contacts, c_row, chunk_accounts)
    tp = data.touchpoints
    tp = tp.loc[tp["content_id"].notna(), ["account_id", "content_id", "contact_id", "ts"]]
    owner = (
        data.accounts.set_index(data.accounts["account_id"].astype(str))["owner_rep_id"]
        if "owner_rep_id" in data.accounts
        else pd.Series(dtype=object)
    )
    return _Scored(
        account_ids=account_ids.tolist(),
        proba=proba,
        risk=risk,
        contacts=contacts,
        contact_rows=pd.Series(np.arange(len(contacts))).groupby(c_row).indices,
        p=p,
        touchpoints=tp,
        touchpoint_rows=tp.groupby(tp["account_id"].astype(str), sort=False).indices,
        owner=owner,
        outcomes=outcome_probabilities(models, rows, threads=0),
        has_phase=models.phase is not None,
        has_risk=models.churn is not None,
        has_actions=models.next_content is not None,
    )


def _with_account_level(
    contacts: pd.DataFrame, c_row: np.ndarray, account_ids: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """Returns the addressees of every account (``models.arbitration.addressees``, as
    online): ``contacts`` (``c_row``: each one's account row) plus one account-level
    addressee (no role) for each account without a current contact, and their account rows."""
    without = np.setdiff1d(np.arange(len(account_ids)), c_row)
    if not len(without):
        return contacts, c_row
    account_level = pd.DataFrame(
        {
            "account_id": account_ids[without],
            "contact_id": ACCOUNT_LEVEL,
            "role": pd.Series([None] * len(without), dtype=object),
        }
    )
    return (
        pd.concat([contacts, account_level], ignore_index=True),
        np.concatenate([c_row, without]),
    )


def _record(
    setup: ScoringSetup,
    scored: _Scored,
    r: int,
    now: pd.Timestamp,
    k: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Returns the output row of account ``r``: its phase, churn and greedy top-k actions."""
    account_id = scored.account_ids[r]
    mine = scored.contact_rows.get(r, np.zeros(0, dtype=np.int64))
    acc_contacts = scored.contacts.iloc[mine][["contact_id", "role"]].reset_index(drop=True)
    ids = acc_contacts["contact_id"].astype(str).to_numpy(dtype=object)
    if not scored.has_actions:  # no next-content model: nothing to rank
        ids = ids[:0]
    candidates = pd.DataFrame(
        {
            "contact_id": np.repeat(ids, len(setup.content)),
            "content_id": np.tile(setup.catalog.content_ids, len(ids)),
            "p_response": scored.p[mine[: len(ids)]].ravel(),
        }
    )
    tp = scored.touchpoints
    consumed_rows = scored.touchpoint_rows.get(account_id)
    consumed = (
        tp.iloc[consumed_rows][["content_id", "contact_id", "ts"]]
        if consumed_rows is not None
        else tp.iloc[:0][["content_id", "contact_id", "ts"]]
    )
    proba, risk = scored.proba[r], float(scored.risk[r])
    # Without a churn model the churn lever is off (the risk counts as none).
    lever = risk if scored.has_risk else 0.0
    context = AccountContext(
        account_id, proba, setup.phases, lever, contacts=acc_contacts, consumed=consumed
    )
    decision = rank_actions(
        context, candidates, setup.catalog, setup.config, k=k, rng=rng, now=now, explore=False
    )
    best = int(np.argmax(proba))
    record: dict[str, Any] = {
        "account_id": account_id,
        "owner_rep_id": scored.owner.get(account_id),
        "phase": setup.phases[best] if scored.has_phase else None,
        "phase_probability": float(proba[best]) if scored.has_phase else np.nan,
        "churn_risk": risk if scored.has_risk else np.nan,
        "churn_band": decision.churn_band if scored.has_risk else None,
        **{f"outcome_{name}": float(p[r]) for name, p in scored.outcomes.items()},
    }
    for slot in range(k):
        a = decision.actions[slot] if slot < len(decision.actions) else None
        record[f"action_{slot + 1}_content_id"] = a.content_id if a else None
        # an account-level action has no contact
        record[f"action_{slot + 1}_contact_id"] = (a.contact_id or None) if a else None
        record[f"action_{slot + 1}_expected_value"] = a.expected_value if a else np.nan
    return record


def _p_response(
    setup: ScoringSetup,
    models: ModelSet,
    frame: pd.DataFrame,
    contacts: pd.DataFrame,
    c_row: np.ndarray,
    chunk_accounts: int,
) -> np.ndarray:
    """Returns contacts x items P(response), each contact scored with its account's
    features (``c_row``: the contact's row in ``frame``)."""
    n_items = len(setup.content)
    out = np.zeros((len(contacts), n_items), dtype=np.float64)
    if models.next_content is None:
        return out
    account = setup.account_frame(models, frame)
    roles = contacts["role"].astype(object).to_numpy()
    spec = models.inputs[NEXT_CONTENT]
    model = booster(models.next_content)
    step = max(1, chunk_accounts * 5)  # about five contacts per account
    for lo in range(0, len(contacts), step):
        sel = np.arange(lo, min(lo + step, len(contacts)))
        decisions = account.iloc[c_row[sel]].reset_index(drop=True)
        rows = nc.candidate_features(
            decisions,
            pd.Series(roles[sel], dtype=object),
            setup.content,
            setup.taxonomy,
            catalog=setup.catalog_arrays,
        )
        p = np.asarray(model.predict(spec.encode(rows)), dtype=np.float64)
        out[sel] = p.reshape(len(sel), n_items)
    # A model trained with a "no action" control ranks by uplift over it.
    return nc.uplift_over_control(
        out, setup.catalog.content_ids, models.run_params.get(NEXT_CONTENT, {})
    )
