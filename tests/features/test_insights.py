"""Journey insights (``features.insights``) checked against direct pandas computation on a
small seeded world (legacy profile: enough purchases, churns and stages in 400 accounts)."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.insights import Insights, Period, PeriodError, compute_insights, resolve_period
from features.insights.rates import wilson
from features.load import read_data_dir
from features.mapping import load_mapping
from features.schema import NO_ACTION_CONTENT_ID, RESPONSE_EVENT_TYPES, JourneyData
from features.simulate import SimulationParams, simulate
from features.taxonomy import Taxonomy

START = pd.Timestamp("2025-03-01", tz="UTC")
END = pd.Timestamp("2025-07-01", tz="UTC")
WEEK = pd.Timedelta(7, "D")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world() -> JourneyData:
    return simulate(400, 7, params=SimulationParams.profile("legacy")).data


@pytest.fixture(scope="module")
def report(world: JourneyData, taxonomy: Taxonomy) -> Insights:
    return compute_insights(world, taxonomy, Period(START, END, "month"))


def _in(frame: pd.DataFrame, start: pd.Timestamp = START, end: pd.Timestamp = END) -> pd.DataFrame:
    return frame.loc[(frame["ts"] >= start) & (frame["ts"] < end)]


def _hand_phase(world: JourneyData, accounts: pd.Series, times: pd.Series) -> list[str]:
    """The last CRM record at or before each time, by bisection per account."""
    history: dict[str, tuple[list[pd.Timestamp], list[str]]] = {}
    for account, rows in world.stages.sort_values("ts", kind="stable").groupby("account_id"):
        history[str(account)] = (list(rows["ts"]), [str(p) for p in rows["phase"]])
    out = []
    for account, ts in zip(accounts, times, strict=True):
        times_, phases = history.get(str(account), ([], []))
        i = bisect.bisect_right(times_, ts)
        out.append(phases[i - 1] if i else "unrecorded")
    return out


def _hand_responded(world: JourneyData, exposures: pd.DataFrame, *, any_item: bool) -> np.ndarray:
    """Per exposure: a response-type touchpoint of the account (and item) within 7 days."""
    tp = world.touchpoints.loc[world.touchpoints["event_type"].isin(RESPONSE_EVENT_TYPES)]
    keys = ["account_id"] if any_item else ["account_id", "content_id"]
    shown = exposures.reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    pairs = shown[[*keys, "ts", "row"]].merge(tp[[*keys, "ts"]], on=keys, suffixes=("", "_r"))
    lag = pairs["ts_r"] - pairs["ts"]
    hit = pairs.loc[(lag >= pd.Timedelta(0)) & (lag <= WEEK), "row"].unique()
    return np.isin(np.arange(len(shown)), hit)


def test_engagement_kpis_are_counts_of_the_period(
    report: Insights, world: JourneyData, taxonomy: Taxonomy
) -> None:
    tp = _in(world.touchpoints)
    kpis = report.current
    assert kpis["touchpoints"] == len(tp) > 1000
    assert kpis["engaged_accounts"] == tp["account_id"].nunique()
    assert kpis["downloads"] == (tp["event_type"] == "download").sum() > 0
    assert kpis["registrations"] == (tp["event_type"] == "register").sum() > 0
    assert kpis["responses"] == tp["event_type"].isin(RESPONSE_EVENT_TYPES).sum()
    engagement = [e.name for e in taxonomy.event_types if e.kind == "engagement"]
    dwell = tp.loc[tp["event_type"].isin(engagement), "value"].dropna()
    assert kpis["dwell_minutes"] == pytest.approx(dwell.mean())
    before = _in(world.touchpoints, START - (END - START), START)
    assert report.previous["touchpoints"] == len(before)


def test_click_through_is_responded_exposures_over_exposures(
    report: Insights, world: JourneyData
) -> None:
    ex = _in(world.exposures)
    hit = _hand_responded(world, ex, any_item=False)
    assert report.current["exposures"] == len(ex)
    rate, low, high = wilson(np.array([hit.sum()]), np.array([len(ex)]))
    assert report.current["click_through"] == pytest.approx(hit.mean())
    assert (
        report.current["click_through_low"],
        report.current["click_through_high"],
    ) == pytest.approx((low[0], high[0]))
    assert 0 < hit.sum() < len(ex)
    by_channel = report.dimensions["channel"].set_index("channel")
    hand = pd.Series(hit, index=ex.index).groupby(ex["channel"].astype(str)).agg(["sum", "size"])
    for channel, row in hand.iterrows():
        assert by_channel.loc[channel, "exposures"] == row["size"]
        assert by_channel.loc[channel, "responded"] == row["sum"]


def test_revenue_and_traffic_match_pandas(report: Insights, world: JourneyData) -> None:
    tp = world.touchpoints
    period = _in(tp)
    purchases = period.loc[period["event_type"] == "purchase", "value"]
    assert report.current["purchases"] == len(purchases) > 0
    assert report.current["won_revenue"] == pytest.approx(purchases.sum())
    renewals = int((period["event_type"] == "renewal").sum())
    churns = int((period["event_type"] == "churn").sum())
    assert report.current["renewals"] == renewals
    assert report.current["renewal_rate"] == pytest.approx(renewals / (renewals + churns))
    # customers at the start: last purchase/renewal/churn before it was no churn
    life = tp.loc[tp["event_type"].isin(["purchase", "renewal", "churn"]) & (tp["ts"] < START)]
    last = life.sort_values("ts").groupby("account_id")["event_type"].last().astype(str)
    customers = set(last.index[last != "churn"])
    churned = set(period.loc[period["event_type"] == "churn", "account_id"]) & customers
    assert report.current["customers_at_start"] == len(customers) > 0
    assert report.current["churn_rate"] == pytest.approx(len(churned) / len(customers))
    created = world.accounts["created_at"]
    assert report.current["leads"] == ((created >= START) & (created < END)).sum()
    accounts = world.stages["account_id"].drop_duplicates()
    at_end = _hand_phase(world, accounts, pd.Series([END - pd.Timedelta(1, "ns")] * len(accounts)))
    assert report.current["pipeline_accounts"] == sum(
        p in ("selection", "purchase") for p in at_end
    )


def test_kpis_per_phase_and_role_use_the_crm_stage_carried_forward(
    report: Insights, world: JourneyData
) -> None:
    tp = _in(world.touchpoints)
    phases = pd.Series(_hand_phase(world, tp["account_id"], tp["ts"])).value_counts()
    by_phase = report.dimensions["phase"].set_index("phase")["touchpoints"]
    assert by_phase.to_dict() == phases.to_dict()
    assert len(by_phase) >= 6
    roles = tp["contact_id"].map(world.contacts.set_index("contact_id")["role"].astype(str))
    hand_roles = roles.fillna("unknown").value_counts()
    by_role = report.dimensions["role"].set_index("role")["touchpoints"]
    assert by_role.to_dict() == hand_roles.to_dict()
    by_content = report.dimensions["content_id"]
    assert by_content["exposures"].is_monotonic_decreasing
    shown = _in(world.exposures)["content_id"].value_counts()
    assert (
        by_content.set_index("content_id")["exposures"].loc[shown.index].tolist() == shown.tolist()
    )


def test_trend_buckets_are_calendar_months_adding_up(report: Insights) -> None:
    trend = report.trend
    assert [t.strftime("%Y-%m") for t in trend["from"]] == [
        "2025-03",
        "2025-04",
        "2025-05",
        "2025-06",
    ]
    assert trend["touchpoints"].sum() == report.current["touchpoints"]
    assert trend["purchases"].sum() == report.current["purchases"]
    weeks = Period(START, END, "week").buckets()
    assert weeks[0] == (START, pd.Timestamp("2025-03-03", tz="UTC"))  # to the first Monday
    assert all(b[0].weekday() == 0 for b in weeks[1:])


def test_gap_matrix_counts_items_and_exposures_per_phase_and_role(
    report: Insights, world: JourneyData, taxonomy: Taxonomy
) -> None:
    gaps = report.gaps.set_index(["phase", "role"])
    content = world.content
    for (phase, role), row in gaps.iterrows():
        if phase == "unrecorded" or role == "unknown":
            assert row["status"] == "unassigned"
            continue
        fits = [
            (not len(ps) or phase in ps) and (not len(rs) or role in rs)
            for ps, rs in zip(content["phases"], content["roles"], strict=True)
        ]
        assert row["items_available"] == sum(fits), (phase, role)
    ex = _in(world.exposures)
    hand = (
        pd.DataFrame(
            {
                "phase": _hand_phase(world, ex["account_id"], ex["ts"]),
                "role": ex["contact_id"]
                .map(world.contacts.set_index("contact_id")["role"].astype(str))
                .fillna("unknown")
                .to_numpy(),
                "hit": _hand_responded(world, ex, any_item=False),
            }
        )
        .groupby(["phase", "role"])["hit"]
        .agg(["sum", "size"])
    )
    for cell, row in hand.iterrows():
        assert gaps.loc[cell, "exposures"] == row["size"]
        assert gaps.loc[cell, "responses"] == row["sum"]
    assert len(gaps.loc[[(p, r) for p in taxonomy.phases for r in taxonomy.role_names]]) == 48
    overall = gaps["responses"].sum() / gaps["exposures"].sum()
    judged = gaps.loc[gaps["status"].isin(["ok", "weak"])]
    assert (judged["exposures"] >= 30).all() and len(judged)
    weak = judged["response_rate_high"] < 0.5 * overall
    assert (judged.loc[weak, "status"] == "weak").all()
    assert (judged.loc[~weak, "status"] == "ok").all()  # no control: uplift unknown
    assert gaps["uplift"].isna().all()
    assert (
        gaps.loc[gaps["items_available"] == 0].query("status != 'unassigned'")["status"] == "empty"
    ).all()


def test_uplift_against_a_no_action_control(world: JourneyData, taxonomy: Taxonomy) -> None:
    """Every third exposure becomes a decision to do nothing: a cell's uplift is the
    account's response rate after an item minus after no action, with a normal interval."""
    exposures = world.exposures.copy()
    control = np.arange(len(exposures)) % 3 == 0
    exposures.loc[control, "content_id"] = NO_ACTION_CONTENT_ID
    content = pd.concat(
        [world.content, world.content.iloc[:1].assign(content_id=NO_ACTION_CONTENT_ID)],
        ignore_index=True,
    )
    data = JourneyData(
        world.accounts, world.contacts, world.touchpoints, content, world.stages, exposures
    )
    gaps = compute_insights(data, taxonomy, Period(START, END)).gaps.set_index(["phase", "role"])
    ex = _in(exposures)
    account_hit = _hand_responded(world, ex, any_item=True)
    cells = pd.DataFrame(
        {
            "phase": _hand_phase(world, ex["account_id"], ex["ts"]),
            "role": ex["contact_id"]
            .map(world.contacts.set_index("contact_id")["role"].astype(str))
            .fillna("unknown")
            .to_numpy(),
            "control": (ex["content_id"] == NO_ACTION_CONTENT_ID).to_numpy(),
            "hit": account_hit,
        }
    )
    cell = cells.loc[~cells["control"]].groupby(["phase", "role"]).size().idxmax()
    mine = cells.set_index(["phase", "role"]).loc[cell]
    p1 = mine.loc[~mine["control"], "hit"].mean()
    p0 = mine.loc[mine["control"], "hit"].mean()
    n1, n0 = (~mine["control"]).sum(), mine["control"].sum()
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    row = gaps.loc[cell]
    assert row["control_exposures"] == n0 > 0
    assert row["exposures"] == n1
    assert row["uplift"] == pytest.approx(p1 - p0)
    assert (row["uplift_low"], row["uplift_high"]) == pytest.approx(
        (p1 - p0 - 1.959964 * se, p1 - p0 + 1.959964 * se)
    )


def test_journey_map_follows_each_phase_change(report: Insights, world: JourneyData) -> None:
    stages = world.stages.sort_values(["account_id", "ts"], kind="stable")
    stages = stages.loc[stages["ts"] < END]
    rows = []
    order = list(report.journey["phase"])
    for _, history in stages.groupby("account_id"):
        phases = [str(p) for p in history["phase"]]
        times = list(history["ts"])
        kept = [i for i in range(len(phases)) if i == 0 or phases[i] != phases[i - 1]]
        for j, i in enumerate(kept):
            if times[i] < START:
                continue
            nxt = kept[j + 1] if j + 1 < len(kept) else None
            moved = nxt is not None and order.index(phases[nxt]) > order.index(phases[i])
            dwell = (times[nxt] - times[i]) / pd.Timedelta(1, "D") if nxt is not None else np.nan
            rows.append(
                {"phase": phases[i], "moved_on": moved, "stayed": nxt is None, "dwell": dwell}
            )
    hand = (
        pd.DataFrame(rows)
        .groupby("phase")
        .agg(
            entries=("moved_on", "size"),
            moved_on=("moved_on", "sum"),
            stayed=("stayed", "sum"),
            dwell=("dwell", "median"),
        )
    )
    journey = report.journey.set_index("phase")
    assert hand["entries"].sum() > 20
    for phase, row in hand.iterrows():
        assert journey.loc[phase, "entries"] == row["entries"]
        assert journey.loc[phase, "moved_on"] == row["moved_on"]
        assert journey.loc[phase, "stayed"] == row["stayed"]
        assert journey.loc[phase, "dwell_days_median"] == pytest.approx(row["dwell"], nan_ok=True)
    assert report.transitions["changes"].sum() <= hand["entries"].sum()


def test_periods_are_checked() -> None:
    with pytest.raises(PeriodError, match="not before"):
        resolve_period("2025-07-01", "2025-03-01", every="month", last_event=None)
    with pytest.raises(PeriodError, match="'yesterday-ish' is not a date"):
        resolve_period("yesterday-ish", None, every="month", last_event=None)
    with pytest.raises(PeriodError, match="every 'day'"):
        resolve_period(None, None, every="day", last_event=None)
    period = resolve_period(
        None, None, every="week", last_event=pd.Timestamp("2025-06-30 17:00", tz="UTC")
    )
    assert (period.start, period.end) == (
        pd.Timestamp("2025-04-02", tz="UTC"),
        pd.Timestamp("2025-07-01", tz="UTC"),
    )  # 90 days


def test_real_data_through_a_mapping(taxonomy: Taxonomy) -> None:
    """The Hillstrom slice: a campaign with a no_action control and no CRM stages."""
    data = read_data_dir(
        REPO / "tests" / "data" / "real",
        taxonomy,
        load_mapping(REPO / "examples" / "hillstrom" / "mapping.yaml"),
    )
    last = data.touchpoints["ts"].max()
    report = compute_insights(
        data, taxonomy, resolve_period("2008-01-01", None, every="week", last_event=last)
    )
    assert (
        report.current["exposures"]
        == (~data.exposures["content_id"].eq(NO_ACTION_CONTENT_ID)).sum()
        > 0
    )
    assert (
        report.current["touchpoints"]
        == (data.touchpoints["ts"] >= pd.Timestamp("2008-01-01", tz="UTC")).sum()
    )
    assert any("no CRM stages" in n for n in report.notes)
    assert report.journey["entries"].sum() == 0
    unassigned = report.gaps.loc[report.gaps["status"] == "unassigned"]
    assert unassigned["control_exposures"].sum() > 0 and unassigned["uplift"].notna().all()
