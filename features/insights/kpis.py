"""Journey KPIs over a period: engagement, revenue and traffic, for the whole period, per
trend bucket and per phase, channel, content item and role.

Definitions (events in ``[start, end)``; phase and role as ``features.insights.events``):

- engagement: touchpoints, engaged accounts, downloads and registrations (touchpoints of
  type ``download``/``register``), responses (touchpoints of a response type),
  click-through = exposures whose item got a response / exposures (``no_action`` control
  exposures left out), dwell time = mean ``value`` (minutes) of engagement touchpoints that
  carry one;
- revenue: won revenue = summed ``value`` of ``purchase`` events (and their number, the mean
  deal), renewal revenue likewise; lead quality = share of the period's leads whose CRM
  stage reached the opportunity phase (default ``selection``) or who purchased, by the
  period's end; pipeline = accounts whose CRM phase at the period's end lies from the
  opportunity phase to the won phase (default ``selection`` .. ``purchase``);
- traffic: leads = accounts created in the period (``created_at``, else first activity);
  churn rate = customers at the start (last purchase/renewal/churn event before it a purchase
  or renewal) with a churn event in the period / customers at the start; renewal rate =
  renewals / (renewals + churns) in the period (the contracts decided then).

Rates carry Wilson 95 % intervals (``<kpi>_low``, ``<kpi>_high``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.insights.events import InsightEvents
from features.insights.rates import wilson
from features.schema import RESPONSE_EVENT_TYPES
from features.taxonomy import Taxonomy

Dimension = str  # "phase", "channel", "content_id" or "role"
DIMENSIONS: tuple[Dimension, ...] = ("phase", "channel", "content_id", "role")

KPI_GROUPS: dict[str, tuple[str, ...]] = {
    "engagement": (
        "touchpoints",
        "engaged_accounts",
        "downloads",
        "registrations",
        "responses",
        "exposures",
        "click_through",
        "dwell_minutes",
    ),
    "revenue": (
        "purchases",
        "won_revenue",
        "mean_deal",
        "renewals",
        "renewal_revenue",
        "lead_quality",
        "pipeline_accounts",
    ),
    "traffic": ("leads", "customers_at_start", "churns", "churn_rate", "renewal_rate"),
}
RATES = ("click_through", "lead_quality", "churn_rate", "renewal_rate")


@dataclass(frozen=True)
class KpiDefinitions:
    """The phases revenue KPIs are read from (taxonomy phase names): an account reached an
    opportunity at ``opportunity_phase``; ``won_phase`` is the last phase of an open deal."""

    opportunity_phase: str = "selection"
    won_phase: str = "purchase"

    def pipeline_phases(self, taxonomy: Taxonomy) -> list[str] | None:
        """The phases of an open deal, or None when the taxonomy lacks either phase."""
        phases = taxonomy.phases
        if self.opportunity_phase not in phases or self.won_phase not in phases:
            return None
        first, last = phases.index(self.opportunity_phase), phases.index(self.won_phase)
        return phases[first : last + 1]


def period_kpis(
    ev: InsightEvents,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    taxonomy: Taxonomy,
    definitions: KpiDefinitions,
) -> dict[str, float | int | None]:
    """Every KPI of :data:`KPI_GROUPS` over ``[start, end)`` (rates with ``_low``/``_high``);
    None where the data cannot give it (no exposures: no click-through)."""
    tp = _between(ev.touchpoints, start, end)
    ex = _between(ev.exposures, start, end)
    ex = ex.loc[~ex["is_control"].to_numpy(dtype=bool)]
    life = ev.lifecycle
    in_period = _between(life, start, end)
    event = in_period["event_type"].astype("str")
    out: dict[str, float | int | None] = {
        "touchpoints": len(tp),
        "engaged_accounts": int(tp["account_id"].nunique()),
        "downloads": int(tp["event_type"].eq("download").sum()),
        "registrations": int(tp["event_type"].eq("register").sum()),
        "responses": int(tp["event_type"].isin(RESPONSE_EVENT_TYPES).sum()),
        "exposures": len(ex),
        "dwell_minutes": _mean(dwell_minutes(tp, taxonomy)),
    }
    _rate(out, "click_through", int(ex["responded"].sum()), len(ex))
    purchases = in_period.loc[event.eq("purchase").to_numpy(), "value"]
    renewals = int(event.eq("renewal").sum())
    churns = int(event.eq("churn").sum())
    out |= {
        "purchases": len(purchases),
        "won_revenue": float(purchases.sum()),
        "mean_deal": _mean(purchases),
        "renewals": renewals,
        "renewal_revenue": float(in_period.loc[event.eq("renewal").to_numpy(), "value"].sum()),
        "churns": churns,
    }
    leads = ev.created.index[((ev.created >= start) & (ev.created < end)).to_numpy()]
    out["leads"] = len(leads)
    pipeline = definitions.pipeline_phases(taxonomy)
    if pipeline is None:
        out |= {"lead_quality": None, "lead_quality_low": None, "lead_quality_high": None}
        out["pipeline_accounts"] = None
    else:
        _rate(
            out, "lead_quality", len(_qualified(ev, pipeline, end).intersection(leads)), len(leads)
        )
        out["pipeline_accounts"] = int(_phase_at_end(ev, end).isin(pipeline).sum())
    customers = _customers_at(life, start)
    churned = in_period.loc[event.eq("churn").to_numpy(), "account_id"].unique()
    out["customers_at_start"] = len(customers)
    _rate(out, "churn_rate", len(customers.intersection(pd.Index(churned))), len(customers))
    _rate(out, "renewal_rate", renewals, renewals + churns)
    return out


def dwell_minutes(touchpoints: pd.DataFrame, taxonomy: Taxonomy) -> pd.Series:
    """The ``value`` (minutes) of the engagement touchpoints that carry one."""
    engagement = [e.name for e in taxonomy.event_types if e.kind == "engagement"]
    values = touchpoints["value"]
    return values.loc[touchpoints["event_type"].isin(engagement).to_numpy() & values.notna()]


def by_dimension(
    ev: InsightEvents,
    start: pd.Timestamp,
    end: pd.Timestamp,
    dimension: Dimension,
    *,
    taxonomy: Taxonomy,
) -> pd.DataFrame:
    """One row per value of ``dimension`` seen in ``[start, end)``: touchpoints, engaged
    accounts, downloads, registrations, responses, dwell minutes, purchases, won revenue,
    renewals, churns (from touchpoints) and exposures, click-through with its interval (from
    exposures, control left out). Phases, channels and roles in taxonomy order; content by
    exposures, then touchpoints. Content adds its title."""
    tp = _between(ev.touchpoints, start, end)
    ex = _between(ev.exposures, start, end)
    ex = ex.loc[~ex["is_control"].to_numpy(dtype=bool)]
    engagement = [e.name for e in taxonomy.event_types if e.kind == "engagement"]
    event = tp["event_type"]
    frame = pd.DataFrame(
        {
            "key": tp[dimension].astype("str"),
            "account_id": tp["account_id"],
            "download": event.eq("download").to_numpy(),
            "register": event.eq("register").to_numpy(),
            "response": event.isin(RESPONSE_EVENT_TYPES).to_numpy(),
            "dwell": tp["value"].where(event.isin(engagement).to_numpy()),
            "purchase": event.eq("purchase").to_numpy(),
            "won": tp["value"].where(event.eq("purchase").to_numpy()),
            "renewal": event.eq("renewal").to_numpy(),
            "churn": event.eq("churn").to_numpy(),
        }
    )
    grouped = frame.dropna(subset=["key"]).groupby("key", sort=False)
    touch = pd.DataFrame(
        {
            "touchpoints": grouped.size(),
            "engaged_accounts": grouped["account_id"].nunique(),
            "downloads": grouped["download"].sum(),
            "registrations": grouped["register"].sum(),
            "responses": grouped["response"].sum(),
            "dwell_minutes": grouped["dwell"].mean(),
            "purchases": grouped["purchase"].sum(),
            "won_revenue": grouped["won"].sum(),
            "renewals": grouped["renewal"].sum(),
            "churns": grouped["churn"].sum(),
        }
    )
    shown = pd.DataFrame({"key": ex[dimension].astype("str"), "hit": ex["responded"].to_numpy()})
    by_key = shown.dropna(subset=["key"]).groupby("key", sort=False)["hit"]
    exposed = pd.DataFrame({"exposures": by_key.size(), "responded": by_key.sum()})
    table = touch.join(exposed, how="outer")
    counts = [c for c in table.columns if c not in ("dwell_minutes",)]
    table[counts] = table[counts].fillna(0)
    rate, low, high = wilson(table["responded"].to_numpy(), table["exposures"].to_numpy())
    table["click_through"], table["click_through_low"], table["click_through_high"] = (
        rate,
        low,
        high,
    )
    table = table.astype({c: "int64" for c in counts if c != "won_revenue"})
    table.index.name = dimension
    table = _ordered(table, dimension, ev, taxonomy).reset_index()
    if dimension == "content_id":
        table.insert(1, "title", table["content_id"].map(ev.titles).astype("str"))
    return table


def trend(
    ev: InsightEvents,
    buckets: list[tuple[pd.Timestamp, pd.Timestamp]],
    *,
    taxonomy: Taxonomy,
    definitions: KpiDefinitions,
) -> pd.DataFrame:
    """One row of :func:`period_kpis` per bucket, with its ``from``, ``to`` and ``days`` (a
    bucket cut by the period's start or end is shorter: compare per day)."""
    rows = [
        {
            "from": a,
            "to": b,
            "days": (b - a) / pd.Timedelta(1, "D"),
            **period_kpis(ev, a, b, taxonomy=taxonomy, definitions=definitions),
        }
        for a, b in buckets
    ]
    return pd.DataFrame(rows)


def _between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame.loc[((frame["ts"] >= start) & (frame["ts"] < end)).to_numpy()]


def _rate(out: dict[str, float | int | None], name: str, k: int, n: int) -> None:
    p, low, high = wilson(np.array([k]), np.array([n]))
    out[name], out[f"{name}_low"], out[f"{name}_high"] = (
        None if np.isnan(v[0]) else float(v[0]) for v in (p, low, high)
    )


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _qualified(ev: InsightEvents, pipeline: list[str], end: pd.Timestamp) -> pd.Index:
    """Accounts whose CRM stage reached the first pipeline phase or later, or who purchased,
    before ``end``."""
    later = ev.stages["phase"].astype("str").isin(ev.phases[ev.phases.index(pipeline[0]) : -1])
    reached = ev.stages.loc[later.to_numpy() & (ev.stages["ts"] < end).to_numpy(), "account_id"]
    life = ev.lifecycle
    bought = life.loc[(life["event_type"].eq("purchase") & (life["ts"] < end)).to_numpy()]
    return pd.Index(pd.concat([reached, bought["account_id"]]).unique())


def _phase_at_end(ev: InsightEvents, end: pd.Timestamp) -> pd.Series:
    """Each recorded account's CRM phase just before ``end`` (its last record before it)."""
    before = ev.stages.loc[(ev.stages["ts"] < end).to_numpy()]
    return before.groupby("account_id", sort=False)["phase"].last().astype("str")


def _customers_at(life: pd.DataFrame, start: pd.Timestamp) -> pd.Index:
    """Accounts whose last purchase, renewal or churn before ``start`` was no churn."""
    before = life.loc[(life["ts"] < start).to_numpy()].sort_values("ts", kind="stable")
    last = before.groupby("account_id", sort=False)["event_type"].last().astype("str")
    return pd.Index(last.index[last.ne("churn").to_numpy()])


def _ordered(
    table: pd.DataFrame, dimension: Dimension, ev: InsightEvents, taxonomy: Taxonomy
) -> pd.DataFrame:
    order = {"phase": ev.phases, "role": ev.roles, "channel": taxonomy.channel_names}.get(dimension)
    if order is None:
        return table.sort_values(["exposures", "touchpoints"], ascending=False, kind="stable")
    return table.reindex([k for k in order if k in table.index])
