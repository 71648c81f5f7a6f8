"""Why now: what about an account's recent history makes this the moment to act, in words a
rep reads (:func:`why_now`).

The model's reasons say why an account is in a phase or at risk; they are about levels ("3
downloads in the last 30 days"). A rep deciding whom to call today asks what *changed*: the
CRM moved the account on, its behaviour is ahead of what the CRM says, activity doubled,
usage fell, tickets piled up, it went quiet, its risk is high. Each signal below reads the
account's point-in-time features (the same row the models score, so it works on any data
the pipeline reads) and speaks only when the change is large enough to matter (thresholds
below); the most urgent come first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.explain.words import category_label, days, is_missing, number

# A CRM phase recorded at most this many days ago is news.
NEW_PHASE_DAYS = 14
# Activity "picked up" when the last 30 days hold at least this many touchpoints and at
# least twice those of the 30 days before.
ACTIVITY_MIN = 5
# Engagement (responses to content) and support tickets: a rise by at least this many.
ENGAGEMENT_RISE = 3
TICKETS_RISE = 2
# A customer's product usage "fell" by at least this many events and by at least half.
USAGE_DROP = 5
# An account with history but no touchpoint for this long has gone quiet (and one silent
# for more than a year is not news).
QUIET_DAYS = (45, 365)
# At most this many signals per answer: the rest would bury the first.
MAX_SIGNALS = 3


@dataclass(frozen=True)
class WhyNow:
    """One timing signal: a stable code a widget can style (``signal``) and the sentence."""

    signal: str
    text: str


def why_now(
    row: Mapping[str, Any],
    *,
    phase: str | None,
    phases: Sequence[str],
    churn_band: str | None,
    churn_risk: float | None = None,
    horizon_days: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[WhyNow, ...]:
    """The timing signals of one account, most urgent first (at most :data:`MAX_SIGNALS`).

    ``row`` maps feature names to the account's values as of the answer (missing names are
    read as unknown: a signal whose inputs are missing stays silent); ``phase`` is the
    likeliest phase the model predicts (None: no phase model), ``phases`` the phases in
    journey order, ``churn_band`` the risk band (None: no churn model), ``churn_risk`` and
    ``horizon_days`` the calibrated risk and its horizon, for the risk's sentence."""
    labels = labels or {}
    found = [
        signal
        for signal in (
            _risk(churn_band, churn_risk, horizon_days),
            _usage_down(row),
            _tickets_up(row),
            _ahead_of_crm(row, phase, phases, labels),
            _new_crm_phase(row, labels),
            _activity_up(row),
            _engagement_up(row),
            _gone_quiet(row),
        )
        if signal is not None
    ]
    return tuple(found[:MAX_SIGNALS])


def _value(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is None or is_missing(value):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _risk(band: str | None, risk: float | None, horizon: int | None) -> WhyNow | None:
    if band != "high":
        return None
    text = "churn risk is high"
    if risk is not None and math.isfinite(risk):
        within = f" within {horizon} days" if horizon else ""
        text += f": {risk * 100:.0f} %{within}"
    return WhyNow("churn_risk_high", text)


def _usage_down(row: Mapping[str, Any]) -> WhyNow | None:
    trend = _value(row, "trend_usage_30d")
    if _value(row, "is_customer") != 1 or trend is None or trend > -USAGE_DROP:
        return None
    drop = -trend
    last = _value(row, "n_event_usage_30d")
    # trend = last 30 days - the 30 before, so the 30 before = last 30 - trend
    if last is not None:
        earlier = last + drop
        if drop < earlier / 2:
            return None
        return WhyNow(
            "usage_down",
            f"product use fell: {_count(last, 'usage event')} in the last 30 days against "
            f"{number(earlier)} in the 30 before",
        )
    return WhyNow(
        "usage_down",
        f"product use fell: {number(drop)} fewer usage events than in the 30 days before",
    )


def _count(n: float, noun: str) -> str:
    """ "no usage events", "1 usage event", "12 usage events": never a bare zero."""
    if n == 0:
        return f"no {noun}s"
    return f"{number(n)} {noun}" if n == 1 else f"{number(n)} {noun}s"


def _rise(
    row: Mapping[str, Any], trend: str, at_least: int, signal: str, what: str
) -> WhyNow | None:
    """``signal`` when the 30-day trend feature ``trend`` rose by ``at_least`` or more."""
    rise = _value(row, trend)
    if rise is None or rise < at_least:
        return None
    return WhyNow(signal, f"{number(rise)} more {what} in the last 30 days than in the 30 before")


def _tickets_up(row: Mapping[str, Any]) -> WhyNow | None:
    return _rise(row, "trend_support_tickets_30d", TICKETS_RISE, "tickets_up", "support tickets")


def _ahead_of_crm(
    row: Mapping[str, Any], phase: str | None, phases: Sequence[str], labels: Mapping[str, str]
) -> WhyNow | None:
    if phase is None or phase not in phases:
        return None
    crm = row.get("crm_phase")
    at = phases.index(phase)
    predicted = category_label(phase, labels)
    if is_missing(crm):
        # Every account starts in the first phase: only a later one is news.
        if at == 0 or _value(row, "n_touchpoints_90d") in (None, 0.0):
            return None
        return WhyNow(
            "ahead_of_crm",
            f"its behaviour reads as {predicted}, and the CRM has no phase for it yet",
        )
    crm = str(crm)
    if crm not in phases or phases.index(crm) >= at:
        return None
    since = _value(row, "days_in_crm_phase")
    recorded = "" if since is None else f" (recorded {days(since)} ago)"
    return WhyNow(
        "ahead_of_crm",
        f"its behaviour reads as {predicted}; the CRM still says "
        f"{category_label(crm, labels)}{recorded}",
    )


def _new_crm_phase(row: Mapping[str, Any], labels: Mapping[str, str]) -> WhyNow | None:
    crm = row.get("crm_phase")
    since = _value(row, "days_in_crm_phase")
    if is_missing(crm) or since is None or since > NEW_PHASE_DAYS:
        return None
    when = "today" if since < 1 else f"{days(since)} ago"
    return WhyNow("new_crm_phase", f"the CRM moved it to {category_label(str(crm), labels)} {when}")


def _activity_up(row: Mapping[str, Any]) -> WhyNow | None:
    last = _value(row, "n_touchpoints_30d")
    trend = _value(row, "trend_touchpoints_30d")
    if last is None or trend is None or last < ACTIVITY_MIN:
        return None
    before = last - trend
    if last < 2 * before or trend <= 0:
        return None
    against = f"against {number(before)} in the 30 before" if before > 0 else "after none before"
    return WhyNow(
        "activity_up",
        f"activity picked up: {number(last)} touchpoints in the last 30 days {against}",
    )


def _engagement_up(row: Mapping[str, Any]) -> WhyNow | None:
    return _rise(
        row, "trend_engagement_30d", ENGAGEMENT_RISE, "engagement_up", "responses to content"
    )


def _gone_quiet(row: Mapping[str, Any]) -> WhyNow | None:
    silent = _value(row, "days_since_last_touch")
    if silent is None or not QUIET_DAYS[0] <= silent <= QUIET_DAYS[1]:
        return None
    return WhyNow("gone_quiet", f"no touchpoint for {days(silent)}: time to re-engage")
