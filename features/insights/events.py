"""The events an insights report counts, each with the account's phase and the contact's
role at that moment.

- **Phase at an event**: the CRM stage recorded last at or before it, carried forward
  (``stages``); ``unrecorded`` before the account's first record. A phase model's
  predictions are not used: the report says what the CRM said at the time.
- **Role**: the contact's buying-center role; ``unknown`` without a contact or a role.
- **Response to an exposure**: a touchpoint of a response type on the same account and item
  within ``RESPONSE_WINDOW_DAYS`` after it (``features.pipeline.responses``, as the features
  and labels count it), also after the period's end. The **account's response** (any
  response-type touchpoint of the account in that window, whatever the item) is what a
  ``no_action`` control can be compared on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.pipeline.prepare import category_codes, codes
from features.pipeline.responses import NO_TIME, first_response_ns
from features.schema import (
    NO_ACTION_CONTENT_ID,
    RESPONSE_EVENT_TYPES,
    RESPONSE_WINDOW_DAYS,
    JourneyData,
    account_created_at,
)
from features.taxonomy import Taxonomy
from features.timestamps import column_ns

UNRECORDED = "unrecorded"  # phase before the account's first CRM record
UNKNOWN_ROLE = "unknown"  # no contact, or a contact without a role
LIFECYCLE_TYPES = ("purchase", "renewal", "churn")


@dataclass
class InsightEvents:
    """What the KPIs are computed from (times are UTC timestamps):

    - ``touchpoints``: those in ``[since, until)`` with ``phase`` and ``role`` added;
    - ``exposures``: those in ``[since, until)`` with ``phase``, ``role``, ``responded`` (the
      item got a response) and ``account_responded``;
    - ``lifecycle``: every purchase, renewal and churn event (all time, with ``phase``);
    - ``stages``: the CRM's phase changes (repeated records of one phase collapsed);
    - ``created``: each account's creation (``account_created_at``), indexed by account id.
    """

    touchpoints: pd.DataFrame
    exposures: pd.DataFrame
    lifecycle: pd.DataFrame
    stages: pd.DataFrame
    created: pd.Series
    phases: list[str]
    roles: list[str]
    titles: pd.Series


def insight_events(
    data: JourneyData, taxonomy: Taxonomy, since: pd.Timestamp, until: pd.Timestamp
) -> InsightEvents:
    """The events of ``data`` in ``[since, until)`` prepared for the KPIs (see the class);
    assumes validated, canonical tables."""
    phases = [*taxonomy.phases, UNRECORDED]
    roles = [*taxonomy.role_names, UNKNOWN_ROLE]
    stages = phase_changes(data.stages, taxonomy)
    tp = data.touchpoints
    in_period = (tp["ts"] >= since) & (tp["ts"] < until)
    touchpoints = _with_phase_and_role(tp.loc[in_period], stages, data.contacts, phases, roles)
    lifecycle = tp.loc[tp["event_type"].isin(LIFECYCLE_TYPES)]
    lifecycle = _with_phase_and_role(lifecycle, stages, data.contacts, phases, roles)
    ex = data.exposures
    shown = ex.loc[(ex["ts"] >= since) & (ex["ts"] < until)] if len(ex) else ex
    exposures = _with_phase_and_role(shown, stages, data.contacts, phases, roles)
    responses = tp.loc[
        (tp["ts"] >= since)
        & (tp["ts"] < until + pd.Timedelta(RESPONSE_WINDOW_DAYS, "D"))
        & tp["event_type"].isin(RESPONSE_EVENT_TYPES)
    ]
    exposures["responded"], exposures["account_responded"] = _responses(
        exposures, responses, taxonomy
    )
    created = pd.Series(account_created_at(data).to_numpy(), index=data.accounts["account_id"])
    titles = data.content.set_index("content_id")["title"] if len(data.content) else pd.Series()
    return InsightEvents(touchpoints, exposures, lifecycle, stages, created, phases, roles, titles)


def phase_changes(stages: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """``stages`` sorted by account and time with a record of the phase the account was in
    already dropped (a CRM saving the same stage again is no change); columns account_id,
    ts, phase (categorical, taxonomy order)."""
    if not len(stages):
        return pd.DataFrame(
            {
                "account_id": pd.Series(dtype="str"),
                "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                "phase": pd.Categorical([], categories=taxonomy.phases),
            }
        )
    ordered = stages[["account_id", "ts", "phase"]].sort_values(["account_id", "ts"], kind="stable")
    same_account = ordered["account_id"].eq(ordered["account_id"].shift())
    repeated = same_account & ordered["phase"].astype(str).eq(ordered["phase"].astype(str).shift())
    return ordered.loc[~repeated].reset_index(drop=True)


def phase_at(
    accounts: pd.Series, times: pd.Series, stages: pd.DataFrame, phases: list[str]
) -> pd.Categorical[str]:
    """The CRM phase carried forward to each (account, time): the last record at or before
    the time; :data:`UNRECORDED` where there is none. ``stages`` as :func:`phase_changes`."""
    out = np.full(len(accounts), len(phases) - 1, dtype=np.int64)
    if len(accounts) and len(stages):
        index = pd.Index(stages["account_id"].unique())
        left = pd.DataFrame(
            {"acc": codes(accounts.astype("str"), index), "ns": column_ns(times)}
        ).assign(row=np.arange(len(accounts)))
        right = pd.DataFrame(
            {
                "acc": codes(stages["account_id"].astype("str"), index),
                "ns": column_ns(stages["ts"]),
                "code": category_codes(stages["phase"], phases[:-1]),
            }
        )
        merged = pd.merge_asof(
            left.sort_values("ns", kind="stable"),
            right.sort_values("ns", kind="stable"),
            on="ns",
            by="acc",
            direction="backward",
        )
        found = merged["code"].notna().to_numpy() & (merged["acc"].to_numpy() >= 0)
        rows = merged["row"].to_numpy()
        out[rows[found]] = merged["code"].to_numpy()[found].astype(np.int64)
    return pd.Categorical.from_codes(out, categories=pd.Index(phases))


def _with_phase_and_role(
    frame: pd.DataFrame,
    stages: pd.DataFrame,
    contacts: pd.DataFrame,
    phases: list[str],
    roles: list[str],
) -> pd.DataFrame:
    out = frame.copy()
    out["phase"] = phase_at(frame["account_id"], frame["ts"], stages, phases)
    role_codes = np.full(len(frame), len(roles) - 1, dtype=np.int64)
    if len(frame) and len(contacts):
        contact_roles = contacts.set_index("contact_id")["role"].astype("str")
        known = category_codes(frame["contact_id"].map(contact_roles), roles[:-1])
        role_codes = np.where(known >= 0, known, role_codes)
    out["role"] = pd.Categorical.from_codes(role_codes, categories=pd.Index(roles))
    out["is_control"] = (
        out["content_id"].eq(NO_ACTION_CONTENT_ID).fillna(False).to_numpy(dtype=bool)
        if "content_id" in out.columns
        else False
    )
    return out


def _responses(
    exposures: pd.DataFrame, responses: pd.DataFrame, taxonomy: Taxonomy
) -> tuple[np.ndarray, np.ndarray]:
    """Per exposure: did its item get a response; did the account respond at all (both
    within the response window)."""
    if not len(exposures):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    accounts = pd.Index(exposures["account_id"].astype("str").unique())
    items = pd.Index(
        pd.concat([exposures["content_id"], responses["content_id"]])
        .dropna()
        .astype("str")
        .unique()
    )
    exp_acc = codes(exposures["account_id"].astype("str"), accounts)
    tp_acc = codes(responses["account_id"].astype("str"), accounts)
    exp_ns, tp_ns = column_ns(exposures["ts"]), column_ns(responses["ts"])
    events = category_codes(responses["event_type"], taxonomy.event_type_names)
    item = first_response_ns(
        exp_acc,
        codes(exposures["content_id"].astype("str"), items),
        exp_ns,
        tp_acc,
        codes(responses["content_id"].astype("str"), items),
        tp_ns,
        events,
        taxonomy,
    )
    # Any item: every touchpoint and exposure on one shared "item".
    account = first_response_ns(
        exp_acc,
        np.zeros(len(exp_acc), dtype=np.int64),
        exp_ns,
        tp_acc,
        np.zeros(len(tp_acc), dtype=np.int64),
        tp_ns,
        events,
        taxonomy,
    )
    return item != NO_TIME, account != NO_TIME
