"""Buying-center features: the account's contacts and roles, present, gone and engaged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.id_codes import id_positions
from features.pipeline.prepare import PreparedEvents, TouchpointWindow
from features.pipeline.specs import ENGAGEMENT_WINDOW_DAYS
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY


def buying_center_features(
    data: JourneyData,
    prep: PreparedEvents,
    window: TouchpointWindow,
    as_of: pd.Timestamp,
    taxonomy: Taxonomy,
) -> dict[str, np.ndarray]:
    """Contacts and roles per account as of ``as_of``, and those engaged recently.

    A contact counts from its ``created_at`` until its ``left_at`` (both before ``as_of``);
    "engaged" means a touchpoint in the last ``ENGAGEMENT_WINDOW_DAYS``.
    """
    n = window.n_accounts
    contacts = data.contacts
    c_account = id_positions(contacts["account_id"], data.accounts["account_id"])
    created = contacts["created_at"] < as_of
    if "left_at" in contacts:
        left_at = contacts["left_at"]
        present = (created & ~(left_at < as_of)).to_numpy(dtype=bool)
        left_recently = ((left_at < as_of) & (left_at >= as_of - pd.Timedelta(days=365))).to_numpy(
            dtype=bool, na_value=False
        )
    else:
        present = created.to_numpy(dtype=bool)
        left_recently = np.zeros(len(contacts), dtype=bool)
    known = c_account >= 0
    role = prep.contact_role
    out: dict[str, np.ndarray] = {}
    out["n_contacts"] = np.bincount(c_account[present & known], minlength=n)
    out["n_contacts_left_365d"] = np.bincount(c_account[left_recently & known], minlength=n)
    buyer = (
        taxonomy.role_names.index("economic_buyer")
        if "economic_buyer" in taxonomy.role_names
        else -2
    )
    out["economic_buyer_left_365d"] = np.bincount(
        c_account[left_recently & known & (role == buyer)], minlength=n
    )
    sel = present & known & (role >= 0)
    roles_present = np.zeros((n, len(taxonomy.role_names)), dtype=bool)
    roles_present[c_account[sel], role[sel]] = True
    out["n_roles_covered"] = roles_present.sum(axis=1)
    out.update(_engaged(prep, window, c_account, roles_present))
    return out


def _engaged(
    prep: PreparedEvents,
    window: TouchpointWindow,
    c_account: np.ndarray,
    roles_present: np.ndarray,
) -> dict[str, np.ndarray]:
    """Contacts and roles with a touchpoint in the engagement window, and the share of the
    present roles among them (``roles_present``: (n_accounts, n_roles) bool)."""
    n, n_roles = roles_present.shape
    e = ENGAGEMENT_WINDOW_DAYS
    role = prep.contact_role
    recent = window.age_ns <= e * NS_PER_DAY
    contact = prep.tp_contact[window.rows][recent]
    acc = window.account[recent]
    with_contact = contact >= 0
    engaged = np.unique(contact[with_contact])
    engaged_account = c_account[engaged]
    roles_engaged = np.zeros((n, n_roles), dtype=bool)
    r = role[contact[with_contact]]
    a = acc[with_contact]
    roles_engaged[a[r >= 0], r[r >= 0]] = True
    covered = roles_present.sum(axis=1)
    return {
        f"n_contacts_engaged_{e}d": np.bincount(engaged_account[engaged_account >= 0], minlength=n),
        f"n_roles_engaged_{e}d": roles_engaged.sum(axis=1),
        f"share_roles_engaged_{e}d": np.where(
            covered > 0,
            (roles_engaged & roles_present).sum(axis=1) / np.maximum(covered, 1),
            np.nan,
        ),
    }
