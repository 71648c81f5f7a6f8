"""The journey map: how accounts move between the CRM's phases.

Each change of an account's recorded phase in ``[start, end)`` is an **entry** into that
phase. Its outcome by the period's end: ``moved_on`` (the next recorded phase is later in the
taxonomy), ``fell_back`` (earlier: a lost deal back to trigger, a downgrade), or ``stayed`` (no
other phase recorded before the end); an account that churned while in the phase (a churn
event after the entry and before its next record or the end) counts as ``churned`` too.
Drop-off = fell back or churned. Dwell time = days from the entry to the next record, for
the entries that have one (median and quartiles). Per phase as well: the accounts that were in
it during the period (in it at the start, or entering it), the churn rate (those with a churn
event while in it) and the renewal rate (renewals / (renewals + churns) of events while in it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.insights.events import UNRECORDED, InsightEvents
from features.insights.rates import wilson
from features.timestamps import NS_PER_DAY, column_ns


def journey_map(
    ev: InsightEvents, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(phases, transitions): one row per taxonomy phase (see the module docstring), and
    one row per (from_phase, to_phase) with the number of changes in the period."""
    phases = [p for p in ev.phases if p != UNRECORDED]
    entries = _entries(ev, start, end)
    grouped = entries.groupby("phase", sort=False)
    table = pd.DataFrame(
        {
            "entries": grouped.size(),
            "moved_on": grouped["moved_on"].sum(),
            "fell_back": grouped["fell_back"].sum(),
            "stayed": grouped["stayed"].sum(),
            "churned": grouped["churned"].sum(),
            "dwell_days_median": grouped["dwell_days"].median(),
            "dwell_days_p25": grouped["dwell_days"].quantile(0.25),
            "dwell_days_p75": grouped["dwell_days"].quantile(0.75),
        }
    ).reindex(phases)
    counts = ["entries", "moved_on", "fell_back", "stayed", "churned"]
    table[counts] = table[counts].fillna(0).astype("int64")
    table["drop_off"] = table["fell_back"] + table["churned"]
    for name in ("moved_on", "drop_off"):
        rate, low, high = wilson(table[name].to_numpy(), table["entries"].to_numpy())
        table[f"{name}_share"], table[f"{name}_share_low"], table[f"{name}_share_high"] = (
            rate,
            low,
            high,
        )
    table = table.join(_lifecycle_by_phase(ev, phases, start, end))
    table.index.name = "phase"
    moves = entries.loc[entries["from_phase"].notna()]
    transitions = (
        moves.groupby(["from_phase", "phase"], sort=False)
        .size()
        .rename("changes")
        .reset_index()
        .rename(columns={"phase": "to_phase"})
        .sort_values("changes", ascending=False, kind="stable")
    )
    return table.reset_index(), transitions.reset_index(drop=True)


def _entries(ev: InsightEvents, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every phase change in ``[start, end)`` with the phase before it and its outcome."""
    stages = ev.stages.loc[(ev.stages["ts"] < end).to_numpy()]
    if not len(stages):
        columns = ["moved_on", "fell_back", "stayed", "churned"]
        empty = {"phase": [], "from_phase": [], **{c: np.zeros(0, dtype=bool) for c in columns}}
        return pd.DataFrame({**empty, "dwell_days": np.zeros(0)})
    acc = stages["account_id"].to_numpy()
    phase = stages["phase"].astype("str").to_numpy()
    ns = column_ns(stages["ts"])
    order = np.array([ev.phases.index(p) for p in phase], dtype=np.int64)
    same_next = np.append(acc[1:] == acc[:-1], False)
    same_prev = np.append(False, acc[1:] == acc[:-1])
    previous = np.empty(len(phase), dtype=object)
    previous[1:] = phase[:-1]
    previous[~same_prev] = None
    next_order = np.append(order[1:], -1)
    next_ns = np.append(ns[1:], -1)
    keep = ns >= start.value
    end_ns = np.where(same_next, next_ns, end.value)
    churn = _first_churn_after(ev, stages["account_id"], ns)
    frame = pd.DataFrame(
        {
            "phase": phase,
            "from_phase": previous,
            "moved_on": same_next & (next_order > order),
            "fell_back": same_next & (next_order < order),
            "stayed": ~same_next,
            "churned": churn < end_ns,
            "dwell_days": np.where(same_next, (next_ns - ns) / NS_PER_DAY, np.nan),
        }
    )
    return frame.loc[keep]


def _first_churn_after(ev: InsightEvents, accounts: pd.Series, ns: np.ndarray) -> np.ndarray:
    """Per stage record, the time (ns) of the account's first churn event at or after it
    (int64 max where there is none)."""
    out = np.full(len(ns), np.iinfo(np.int64).max, dtype=np.int64)
    life = ev.lifecycle
    churns = life.loc[life["event_type"].eq("churn").to_numpy(), ["account_id", "ts"]]
    if not len(churns) or not len(ns):
        return out
    left = pd.DataFrame(
        {"acc": accounts.astype("str").to_numpy(), "ns": ns, "row": np.arange(len(ns))}
    )
    right = pd.DataFrame(
        {"acc": churns["account_id"].astype("str").to_numpy(), "ns": column_ns(churns["ts"])}
    )
    right["churn_ns"] = right["ns"]
    merged = pd.merge_asof(
        left.sort_values("ns", kind="stable"),
        right.sort_values("ns", kind="stable"),
        on="ns",
        by="acc",
        direction="forward",
    )
    found = merged["churn_ns"].notna().to_numpy()
    out[merged["row"].to_numpy()[found]] = merged["churn_ns"].to_numpy()[found].astype(np.int64)
    return out


def _lifecycle_by_phase(
    ev: InsightEvents, phases: list[str], start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Per phase: accounts in it during the period, churned ones and the churn rate, renewals
    and the renewal rate."""
    stages = ev.stages
    before = stages.loc[(stages["ts"] < start).to_numpy()]
    at_start = before.groupby("account_id", sort=False)["phase"].last().astype("str")
    entered = stages.loc[((stages["ts"] >= start) & (stages["ts"] < end)).to_numpy()]
    members = pd.concat(
        [
            pd.DataFrame({"account_id": at_start.index, "phase": at_start.to_numpy()}),
            pd.DataFrame(
                {"account_id": entered["account_id"], "phase": entered["phase"].astype("str")}
            ),
        ]
    ).drop_duplicates()
    life = ev.lifecycle.loc[((ev.lifecycle["ts"] >= start) & (ev.lifecycle["ts"] < end)).to_numpy()]
    event = life["event_type"].astype("str")
    churned = life.loc[event.eq("churn").to_numpy()]
    churned = churned.assign(phase=churned["phase"].astype("str"))[["account_id", "phase"]]
    churned = churned.drop_duplicates()
    in_phase = members.groupby("phase").size().reindex(phases, fill_value=0)
    n_churned = churned.groupby("phase").size().reindex(phases, fill_value=0)
    renewals = life.loc[event.eq("renewal").to_numpy(), "phase"].astype("str").value_counts()
    churns = life.loc[event.eq("churn").to_numpy(), "phase"].astype("str").value_counts()
    renewals = renewals.reindex(phases, fill_value=0)
    churns = churns.reindex(phases, fill_value=0)
    out = pd.DataFrame(
        {
            "accounts": in_phase,
            "churned_accounts": n_churned,
            "renewals": renewals,
            "churns": churns,
        }
    )
    rate, low, high = wilson(out["churned_accounts"].to_numpy(), out["accounts"].to_numpy())
    out["churn_rate"], out["churn_rate_low"], out["churn_rate_high"] = rate, low, high
    decided = (out["renewals"] + out["churns"]).to_numpy()
    rate, low, high = wilson(out["renewals"].to_numpy(), decided)
    out["renewal_rate"], out["renewal_rate_low"], out["renewal_rate_high"] = rate, low, high
    return out.astype({c: "int64" for c in ("accounts", "churned_accounts", "renewals", "churns")})
