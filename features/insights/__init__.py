"""Journey insights from the data contract's tables: KPIs (engagement, revenue, traffic) over
a period with trends, per phase, channel, content item and role; the content gap matrix
(phase x buying-center role); and the journey map of phase transitions.

A pure computation over :class:`~features.schema.JourneyData`: ``nba insights`` reads a data
directory (through its mapping) or the service's store into it, and the service's
``GET /v1/insights`` reads its store the same way, so both report the same numbers.
Definitions: ``events`` (phase and role at an event, responses), ``kpis``, ``gaps``,
``journey``.
"""

from features.insights.kpis import KPI_GROUPS, KpiDefinitions
from features.insights.period import DEFAULT_DAYS, EVERY, Every, Period, PeriodError, resolve_period
from features.insights.result import Insights, compute_insights, records

__all__ = [
    "DEFAULT_DAYS",
    "EVERY",
    "KPI_GROUPS",
    "Every",
    "Insights",
    "KpiDefinitions",
    "Period",
    "PeriodError",
    "compute_insights",
    "records",
    "resolve_period",
]
