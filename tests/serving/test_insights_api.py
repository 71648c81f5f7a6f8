"""``GET /v1/insights`` and the ``/insights`` page: the store's insights over a period, the
same numbers ``nba insights --store`` writes, with scopes and bad periods answered clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.insights import Period, compute_insights
from features.insights.events import LIFECYCLE_TYPES
from features.load import read_tables
from features.schema import JourneyData
from nba.cli import app as cli
from serving.store import Store
from serving.store.contract import EventWindow
from tests.utils.api import Api

DAYS = 120


def _period(api: Api) -> tuple[str, str]:
    end = api.now.floor("D")
    return (end - pd.Timedelta(DAYS, "D")).strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")


def test_insights_are_the_stores_numbers(api: Api) -> None:
    start, end = _period(api)
    answer = api.client.get(
        "/v1/insights",
        params={"from": start, "to": end, "every": "week"},
        headers=api.headers("insights:read"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    data = read_tables(api.store.contract_tables().tables, api.registry.taxonomy)
    period = Period(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"), "week")
    expected = compute_insights(data, api.registry.taxonomy, period).to_dict()
    assert body == json.loads(json.dumps(expected))
    tp = data.touchpoints
    in_period = tp.loc[(tp["ts"] >= period.start) & (tp["ts"] < period.end)]
    assert body["kpis"]["engagement"]["touchpoints"]["value"] == len(in_period) > 0
    assert {c["status"] for c in body["content_gaps"]["cells"]} <= {
        "empty",
        "unshown",
        "thin",
        "weak",
        "ok",
        "unassigned",
    }
    assert [p["phase"] for p in body["journey"]["phases"]] == api.registry.taxonomy.phases
    assert set(body["by"]) == {"phase", "channel", "content_id", "role"}


def test_the_command_on_the_store_reports_the_same(api: Api, tmp_path: Path) -> None:
    start, end = _period(api)
    served = api.client.get(
        "/v1/insights", params={"from": start, "to": end}, headers=api.headers("admin")
    ).json()
    env = {"NBA_DATABASE_SCHEMA": api.store.schema or ""}
    args = ["insights", "--store", api.store.url, "--out", str(tmp_path), "--from", start]
    result = CliRunner().invoke(cli, [*args, "--to", end, "--json"], env=env)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "insights.json").read_text())
    assert written["kpis"] == served["kpis"]
    assert written["content_gaps"] == served["content_gaps"]
    summary = json.loads(result.output)
    assert summary["kpis"]["touchpoints"] == served["kpis"]["engagement"]["touchpoints"]["value"]


def test_insights_need_their_scope_and_no_rep(api: Api) -> None:
    assert api.client.get("/v1/insights").status_code == 401
    denied = api.client.get("/v1/insights", headers=api.headers("recommendations:read"))
    assert denied.status_code == 403 and "insights:read" in denied.json()["detail"]
    rep = api.store.create_api_key("insights-rep", ["insights:read"], rep_id="R001")
    bound = api.client.get("/v1/insights", headers={"Authorization": f"Bearer {rep}"})
    assert bound.status_code == 403 and "bound to rep 'R001'" in bound.json()["detail"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"from": "2025-07-01", "to": "2025-03-01"}, "is not before"),
        ({"from": "next tuesday"}, "'next tuesday' is not a date"),
        ({"every": "day"}, "every"),
    ],
)
def test_a_bad_period_is_422_naming_it(api: Api, params: dict[str, str], says: str) -> None:
    answer = api.client.get("/v1/insights", params=params, headers=api.headers("admin"))
    assert answer.status_code == 422
    assert says in json.dumps(answer.json())


def test_the_page_and_its_assets(api: Api) -> None:
    page = api.client.get("/insights")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/static/insights.js" in page.text and "{{config}}" not in page.text
    for name in ("insights.js", "insights.css"):
        assert api.client.get(f"/static/{name}").status_code == 200


def test_an_empty_store_reports_zeros(tmp_path: Path, api: Api) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}", api.registry.taxonomy)
    store.migrate()
    store.dispose()
    result = CliRunner().invoke(
        cli, ["insights", "--store", store.url, "--out", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["kpis"]["touchpoints"] == 0 and summary["kpis"]["click_through"] is None


def test_the_windowed_read_gives_what_the_whole_store_gives(api: Api, tmp_path: Path) -> None:
    """The page reads only the period's events; accounts without created_at still get their
    first activity in the whole store, so leads and every other number are equal."""
    taxonomy = api.registry.taxonomy
    full = read_tables(api.store.contract_tables().tables, taxonomy)
    accounts = full.accounts.assign(created_at=pd.NaT)
    data = JourneyData(
        accounts, full.contacts, full.touchpoints, full.content, full.stages, full.exposures
    )
    store = Store(f"sqlite:///{tmp_path / 'bare.db'}", taxonomy)
    store.migrate()
    store.load_data(data)
    start, end = _period(api)
    period = Period(pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
    until = period.end + pd.Timedelta(7, "D")
    window = EventWindow(period.previous.start.value, until.value, LIFECYCLE_TYPES)
    windowed = read_tables(store.contract_tables(window).tables, taxonomy)
    whole = read_tables(store.contract_tables().tables, taxonomy)
    store.dispose()
    assert len(windowed.touchpoints) < len(whole.touchpoints)
    assert windowed.accounts["created_at"].notna().all()
    expected = compute_insights(whole, taxonomy, period).to_dict()
    assert compute_insights(windowed, taxonomy, period).to_dict() == expected
