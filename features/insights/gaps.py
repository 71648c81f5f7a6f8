"""The content gap matrix: for each phase x buying-center role, the items available, what
was shown and how it worked, with empty and weak cells marked.

A cell's phase and role are those of the exposure (the account's CRM phase at the time and
the contact's role, ``features.insights.events``). Items available: catalog items (not the
``no_action`` control) whose phases and roles include the cell's (an item listing none fits
all). Status, decided in this order:

- ``empty``: no item fits the cell;
- ``unshown``: items fit, none was shown in the period;
- ``thin``: fewer than :data:`MIN_EXPOSURES` exposures, too few to judge;
- ``weak``: the response rate's 95 % interval lies below :data:`WEAK_SHARE` x the period's
  overall response rate, or the uplift over ``no_action`` is known and its interval lies at
  or below 0;
- ``ok`` otherwise;
- ``unassigned`` for the ``unrecorded`` phase and ``unknown`` role rows, whatever their
  numbers: without a phase or role no gap can be judged.

Uplift (where ``no_action`` exposures fall in the cell): the account's response rate after an
item minus after doing nothing (any response-type touchpoint of the account within the
response window), with a normal 95 % interval; ``unknown`` without control exposures in the
cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.insights.events import UNKNOWN_ROLE, UNRECORDED, InsightEvents
from features.insights.rates import difference, wilson
from features.schema import NO_ACTION_CONTENT_ID, fits_every

MIN_EXPOSURES = 30
WEAK_SHARE = 0.5


def gap_matrix(
    ev: InsightEvents, content: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """One row per (phase, role) of the taxonomy, plus ``unrecorded`` phase and ``unknown``
    role rows where exposures fall there: items_available, items_shown, exposures,
    responses, response_rate (+ ``_low``/``_high``), control_exposures, uplift (+ ``_low``,
    ``_high``; NaN: unknown) and status (see the module docstring)."""
    ex = ev.exposures.loc[((ev.exposures["ts"] >= start) & (ev.exposures["ts"] < end)).to_numpy()]
    control = ex["is_control"].to_numpy(dtype=bool)
    shown = pd.DataFrame(
        {
            "phase": ex["phase"].astype("str"),
            "role": ex["role"].astype("str"),
            "content_id": ex["content_id"],
            "hit": ex["responded"].to_numpy(),
            "account_hit": ex["account_responded"].to_numpy(),
        }
    )
    items = shown.loc[~control].groupby(["phase", "role"])
    cells = pd.DataFrame(
        {
            "items_shown": items["content_id"].nunique(),
            "exposures": items.size(),
            "responses": items["hit"].sum(),
            "account_responses": items["account_hit"].sum(),
        }
    )
    ctrl = shown.loc[control].groupby(["phase", "role"])["account_hit"]
    cells = cells.join(
        pd.DataFrame({"control_exposures": ctrl.size(), "control_responses": ctrl.sum()}),
        how="outer",
    )
    grid = _grid(ev, cells.index)
    table = grid.join(cells).fillna(0)
    counts = [c for c in table.columns if c != "items_available"]
    table[counts] = table[counts].astype("int64")
    table["items_available"] = _available(content, table.index)
    _add_rates(table)
    overall = float(table["responses"].sum() / max(int(table["exposures"].sum()), 1))
    table["status"] = _status(table, overall)
    return table.drop(columns=["account_responses", "control_responses"]).reset_index()


def _grid(ev: InsightEvents, seen: pd.Index) -> pd.DataFrame:
    """Every taxonomy (phase, role), then cells with an unrecorded phase or unknown role that
    had exposures."""
    phases = [p for p in ev.phases if p != UNRECORDED]
    roles = [r for r in ev.roles if r != UNKNOWN_ROLE]
    pairs = [(p, r) for p in phases for r in roles]
    extra = [
        (p, r)
        for p in [*phases, UNRECORDED]
        for r in [*roles, UNKNOWN_ROLE]
        if (p == UNRECORDED or r == UNKNOWN_ROLE) and (p, r) in set(seen)
    ]
    return pd.DataFrame(index=pd.MultiIndex.from_tuples(pairs + extra, names=["phase", "role"]))


def _available(content: pd.DataFrame, cells: pd.Index) -> np.ndarray:
    """Catalog items fitting each (phase, role) cell; an unrecorded phase or unknown role is
    fitted by the items fitting every phase (role) only."""
    catalog = content.loc[content["content_id"].ne(NO_ACTION_CONTENT_ID).to_numpy()]
    every_phase = fits_every(catalog["phases"])
    every_role = fits_every(catalog["roles"])
    phase_sets = [
        set(v) if not e else set() for v, e in zip(catalog["phases"], every_phase, strict=True)
    ]
    role_sets = [
        set(v) if not e else set() for v, e in zip(catalog["roles"], every_role, strict=True)
    ]
    out = np.zeros(len(cells), dtype=np.int64)
    for i, (phase, role) in enumerate(cells):
        fits_phase = every_phase | np.array([phase in s for s in phase_sets], dtype=bool)
        fits_role = every_role | np.array([role in s for s in role_sets], dtype=bool)
        out[i] = int((fits_phase & fits_role).sum())
    return out


def _add_rates(table: pd.DataFrame) -> None:
    rate, low, high = wilson(table["responses"].to_numpy(), table["exposures"].to_numpy())
    table["response_rate"], table["response_rate_low"], table["response_rate_high"] = (
        rate,
        low,
        high,
    )
    diff, d_low, d_high = difference(
        table["account_responses"].to_numpy(),
        table["exposures"].to_numpy(),
        table["control_responses"].to_numpy(),
        table["control_exposures"].to_numpy(),
    )
    table["uplift"], table["uplift_low"], table["uplift_high"] = diff, d_low, d_high


def _status(table: pd.DataFrame, overall: float) -> np.ndarray:
    weak_rate = table["response_rate_high"].to_numpy() < WEAK_SHARE * overall
    no_uplift = table["uplift_high"].to_numpy() <= 0
    phase = table.index.get_level_values("phase")
    role = table.index.get_level_values("role")
    return np.select(
        [
            (phase == UNRECORDED) | (role == UNKNOWN_ROLE),
            table["items_available"].to_numpy() == 0,
            table["exposures"].to_numpy() == 0,
            table["exposures"].to_numpy() < MIN_EXPOSURES,
            weak_rate | no_uplift,
        ],
        ["unassigned", "empty", "unshown", "thin", "weak"],
        default="ok",
    )
