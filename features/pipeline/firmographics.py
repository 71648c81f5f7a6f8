"""Account features from the accounts table (firmographics) and the CRM's phase records."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.id_codes import id_positions
from features.pipeline.prepare import category_codes
from features.schema import JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import NS_PER_DAY, column_ns


def firmographics(
    accounts: pd.DataFrame, as_of: pd.Timestamp, *, created: pd.Series
) -> dict[str, np.ndarray | pd.Series]:
    """Size, revenue, age, industry and region of every account, in accounts-table order
    (missing where the accounts table does not say); ``created`` is when each account was
    created (``features.schema.account_created_at``), NaN age where unknown."""
    employees = accounts["employees"].to_numpy(dtype=np.float64, na_value=np.nan)
    revenue = (
        accounts["annual_revenue"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "annual_revenue" in accounts
        else np.full(len(accounts), np.nan)
    )
    age = np.where(
        created.notna().to_numpy(),
        (as_of.as_unit("ns").value - column_ns(created)) / NS_PER_DAY,
        np.nan,
    )
    return {
        "employees": employees,
        "log_employees": np.log10(np.maximum(employees, 1)),
        "annual_revenue": revenue,
        "account_age_days": age,
        "industry": accounts["industry"].reset_index(drop=True),
        "region": accounts["region"].reset_index(drop=True),
    }


def crm_phase(
    data: JourneyData, as_of: pd.Timestamp, taxonomy: Taxonomy
) -> dict[str, np.ndarray | pd.Series]:
    """The phase the CRM last recorded before ``as_of`` and the days since, per account
    (missing where none was recorded)."""
    stages = data.stages
    n = len(data.accounts)
    phase_type = pd.CategoricalDtype(taxonomy.phases)
    phase = pd.Series(pd.Categorical.from_codes(np.full(n, -1), dtype=phase_type))
    days = np.full(n, np.nan)
    if len(stages):
        account = id_positions(stages["account_id"], data.accounts["account_id"])
        ns = column_ns(stages["ts"])
        as_of_ns = int(as_of.as_unit("ns").value)
        keep = np.flatnonzero((ns < as_of_ns) & (account >= 0))
        # last record per account: sort by (account, ts) and take each account's last row
        order = keep[np.lexsort((ns[keep], account[keep]))]
        if len(order):
            is_last = np.append(account[order][1:] != account[order][:-1], True)
            last = order[is_last]
            phase_codes = np.full(n, -1, dtype=np.int64)
            phase_codes[account[last]] = category_codes(stages["phase"], taxonomy.phases)[last]
            phase = pd.Series(pd.Categorical.from_codes(phase_codes, dtype=phase_type))
            days[account[last]] = (as_of_ns - ns[last]) / NS_PER_DAY
    return {"crm_phase": phase, "days_in_crm_phase": days}
