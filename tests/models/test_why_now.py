"""Why now: each timing signal speaks when its change is large enough, stays silent below
its threshold or without its inputs, and reads as a sentence."""

from __future__ import annotations

import math
from typing import Any

import pytest

from models.explain import why_now
from models.explain.timing import MAX_SIGNALS

PHASES = ["awareness", "consideration", "selection", "purchase", "onboarding"]
LABELS = {"awareness": "Awareness", "consideration": "Consideration", "selection": "Selection"}


def signals(row: dict[str, Any], **kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {"phase": None, "phases": PHASES, "churn_band": None} | kw
    return {w.signal: w.text for w in why_now(row, labels=LABELS, **args)}


def test_activity_up_needs_twice_the_30_days_before() -> None:
    assert signals({"n_touchpoints_30d": 12, "trend_touchpoints_30d": 8}) == {
        "activity_up": "activity picked up: 12 touchpoints in the last 30 days against 4 in "
        "the 30 before"
    }
    assert signals({"n_touchpoints_30d": 6, "trend_touchpoints_30d": 6})["activity_up"].endswith(
        "after none before"
    )
    # 10 against 6 is not twice; 4 touchpoints are too few to call
    assert signals({"n_touchpoints_30d": 10, "trend_touchpoints_30d": 4}) == {}
    assert signals({"n_touchpoints_30d": 4, "trend_touchpoints_30d": 4}) == {}


def test_behaviour_ahead_of_the_crm() -> None:
    row = {"crm_phase": "awareness", "days_in_crm_phase": 64.2, "n_touchpoints_90d": 9}
    assert signals(row, phase="selection") == {
        "ahead_of_crm": "its behaviour reads as Selection; the CRM still says Awareness "
        "(recorded 64 days ago)"
    }
    assert signals(row, phase="awareness") == {}  # the same phase is no news
    assert signals({**row, "crm_phase": "selection"}, phase="consideration") == {}  # behind
    # no CRM record: only a phase past the first, for an account with recent touchpoints
    assert "ahead_of_crm" in signals({"n_touchpoints_90d": 3}, phase="consideration")
    assert signals({"n_touchpoints_90d": 3}, phase="awareness") == {}
    assert signals({"n_touchpoints_90d": 0}, phase="consideration") == {}


def test_a_new_crm_phase_is_news_for_two_weeks() -> None:
    assert signals({"crm_phase": "selection", "days_in_crm_phase": 6}) == {
        "new_crm_phase": "the CRM moved it to Selection 6 days ago"
    }
    assert signals({"crm_phase": "selection", "days_in_crm_phase": 0.2})["new_crm_phase"] == (
        "the CRM moved it to Selection today"
    )
    assert signals({"crm_phase": "selection", "days_in_crm_phase": 15}) == {}


def test_customer_signals() -> None:
    row = {"is_customer": 1, "trend_usage_30d": -30, "n_event_usage_30d": 10}
    assert signals(row)["usage_down"] == (
        "product use fell: 10 usage events in the last 30 days against 40 in the 30 before"
    )
    assert signals({**row, "n_event_usage_30d": 0})["usage_down"].startswith(
        "product use fell: no usage events in the last 30 days against 30"
    )
    assert signals({**row, "n_event_usage_30d": 50}) == {}  # 80 -> 50: not half
    assert signals({**row, "is_customer": 0}) == {}  # a prospect's usage is not the point
    assert signals({"trend_support_tickets_30d": 3}) == {
        "tickets_up": "3 more support tickets in the last 30 days than in the 30 before"
    }
    assert signals({"trend_support_tickets_30d": 1}) == {}


def test_risk_quiet_and_engagement() -> None:
    high = signals({}, churn_band="high", churn_risk=0.184, horizon_days=90)
    assert high == {"churn_risk_high": "churn risk is high: 18 % within 90 days"}
    assert signals({}, churn_band="medium", churn_risk=0.1) == {}
    assert signals({"days_since_last_touch": 62})["gone_quiet"] == (
        "no touchpoint for 62 days: time to re-engage"
    )
    assert signals({"days_since_last_touch": 30}) == {}
    assert signals({"days_since_last_touch": 500}) == {}  # long gone is not news
    assert "engagement_up" in signals({"trend_engagement_30d": 4})
    assert signals({"trend_engagement_30d": 2}) == {}


@pytest.mark.parametrize("missing", [None, math.nan, "n/a"])
def test_missing_inputs_stay_silent(missing: Any) -> None:
    row = {
        "n_touchpoints_30d": missing,
        "trend_touchpoints_30d": missing,
        "days_since_last_touch": missing,
        "crm_phase": missing,
        "days_in_crm_phase": missing,
        "trend_usage_30d": missing,
    }
    assert signals(row, phase=None) == {}


def test_most_urgent_first_and_at_most_three() -> None:
    row = {
        "is_customer": 1,
        "trend_usage_30d": -20,
        "trend_support_tickets_30d": 4,
        "n_touchpoints_30d": 20,
        "trend_touchpoints_30d": 15,
        "trend_engagement_30d": 5,
        "crm_phase": "selection",
        "days_in_crm_phase": 3,
    }
    got = why_now(row, phase=None, phases=PHASES, churn_band="high", churn_risk=0.3)
    assert len(got) == MAX_SIGNALS
    assert [w.signal for w in got] == ["churn_risk_high", "usage_down", "tickets_up"]
