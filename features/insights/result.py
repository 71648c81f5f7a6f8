"""Everything an insights report shows, computed once (:func:`compute_insights`) and
written as JSON and CSV by the command and answered by the service alike."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.insights.events import insight_events
from features.insights.gaps import MIN_EXPOSURES, WEAK_SHARE, gap_matrix
from features.insights.journey import journey_map
from features.insights.kpis import (
    DIMENSIONS,
    KPI_GROUPS,
    RATES,
    KpiDefinitions,
    by_dimension,
    period_kpis,
    trend,
)
from features.insights.period import Period
from features.schema import NO_ACTION_CONTENT_ID, JourneyData
from features.taxonomy import Taxonomy


@dataclass
class Insights:
    """The KPIs of ``period`` and of the one before it, the trend per bucket, the KPIs per
    phase, channel, content item and role, the content gap matrix, the journey map and
    notes on what the data could not give."""

    period: Period
    current: dict[str, float | int | None]
    previous: dict[str, float | int | None]
    trend: pd.DataFrame
    dimensions: dict[str, pd.DataFrame]
    gaps: pd.DataFrame
    journey: pd.DataFrame
    transitions: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by file name (what the command writes as CSV)."""
        return {
            "kpis": self.kpi_frame(),
            "trend": self.trend,
            **{f"by_{name.removesuffix('_id')}": frame for name, frame in self.dimensions.items()},
            "content_gaps": self.gaps,
            "journey": self.journey,
            "transitions": self.transitions,
        }

    def kpi_frame(self) -> pd.DataFrame:
        """One row per KPI: its group, this period's and the previous period's value, the
        change, and a rate's interval."""
        rows = []
        for group, names in KPI_GROUPS.items():
            for name in names:
                now, before = self.current.get(name), self.previous.get(name)
                change = now - before if now is not None and before is not None else None
                rows.append(
                    {
                        "group": group,
                        "kpi": name,
                        "value": now,
                        "low": self.current.get(f"{name}_low"),
                        "high": self.current.get(f"{name}_high"),
                        "previous": before,
                        "change": change,
                    }
                )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready values (NaN as None, times ISO 8601)."""
        return {
            "period": self.period.to_dict(),
            "previous_period": self.period.previous.to_dict(),
            "kpis": {
                group: {name: _kpi(self.current, self.previous, name) for name in names}
                for group, names in KPI_GROUPS.items()
            },
            "trend": records(self.trend),
            "by": {name: records(frame) for name, frame in self.dimensions.items()},
            "content_gaps": {
                "min_exposures": MIN_EXPOSURES,
                "weak_share": WEAK_SHARE,
                "cells": records(self.gaps),
            },
            "journey": {"phases": records(self.journey), "transitions": records(self.transitions)},
            "notes": self.notes,
        }

    def summary(self) -> dict[str, Any]:
        """The headline figures (what ``nba insights --json`` prints)."""
        gaps = self.gaps["status"].value_counts()
        return {
            "period": self.period.to_dict(),
            "kpis": {k: _clean(v) for k, v in self.current.items()},
            "previous": {
                k: _clean(v) for k, v in self.previous.items() if not k.endswith(("_low", "_high"))
            },
            "gap_cells": {str(k): int(v) for k, v in gaps.items()},
            "notes": self.notes,
        }


def compute_insights(
    data: JourneyData,
    taxonomy: Taxonomy,
    period: Period,
    *,
    definitions: KpiDefinitions | None = None,
) -> Insights:
    """The insights of validated ``data`` over ``period`` (see ``features.insights``)."""
    defs = definitions or KpiDefinitions()
    previous = period.previous
    ev = insight_events(data, taxonomy, previous.start, period.end)
    return Insights(
        period=period,
        current=period_kpis(ev, period.start, period.end, taxonomy=taxonomy, definitions=defs),
        previous=period_kpis(ev, previous.start, previous.end, taxonomy=taxonomy, definitions=defs),
        trend=trend(ev, period.buckets(), taxonomy=taxonomy, definitions=defs),
        dimensions={
            d: by_dimension(ev, period.start, period.end, d, taxonomy=taxonomy) for d in DIMENSIONS
        },
        gaps=gap_matrix(ev, data.content, period.start, period.end),
        journey=(journey := journey_map(ev, period.start, period.end))[0],
        transitions=journey[1],
        notes=_notes(data, taxonomy, defs, period),
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame``'s rows as JSON-ready dicts: NaN as None, times ISO 8601, numpy numbers as
    Python numbers."""
    return [{str(k): _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _kpi(current: dict[str, Any], previous: dict[str, Any], name: str) -> dict[str, Any]:
    out = {"value": _clean(current.get(name)), "previous": _clean(previous.get(name))}
    if name in RATES:
        out |= {
            "low": _clean(current.get(f"{name}_low")),
            "high": _clean(current.get(f"{name}_high")),
        }
    return out


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _notes(
    data: JourneyData, taxonomy: Taxonomy, defs: KpiDefinitions, period: Period
) -> list[str]:
    """What the data could not give, said once."""
    notes = []
    if not len(data.stages):
        notes.append(
            "no CRM stages: every event's phase is 'unrecorded', the journey map is empty and "
            "lead quality and pipeline count no stage"
        )
    if not len(data.exposures):
        notes.append("no exposures: click-through and the gap matrix's response rates are unknown")
    elif not data.exposures["content_id"].eq(NO_ACTION_CONTENT_ID).any():
        notes.append("no 'no_action' control exposures: uplift is unknown in every cell")
    if defs.pipeline_phases(taxonomy) is None:
        notes.append(
            f"the taxonomy has no phase {defs.opportunity_phase!r} or {defs.won_phase!r}: "
            "lead quality and pipeline are unknown"
        )
    last = data.touchpoints["ts"].max() if len(data.touchpoints) else None
    if last is not None and last < period.start:
        notes.append(f"the latest touchpoint ({last.isoformat()}) is before the period")
    return notes
