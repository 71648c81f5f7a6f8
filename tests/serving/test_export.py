"""Closing the loop, part one: served actions are decisions or impressions, and the store
goes back to training in the data contract (``nba export``, ``nba train --store``).

One app per backend over 120 simulated accounts, exploring often (30 %) so that the log
holds explored decisions with small propensities; every test reads what it served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from features.load import read_data_dir, read_tables
from nba.cli import app as cli
from serving.cli import store_tables
from serving.store.tables import ServedAction
from tests.utils.api import Api, open_api, recommendations
from tests.utils.registry import TrainedRegistry
from tests.utils.store import BACKENDS, logged_recommendations
from training.train import prepare, prepare_data

EXPLORATION_RATE = 0.3
SERVED_ACCOUNTS = 8


@dataclass
class Served:
    """The app after a round of recommendations (``answers``, one per account) and feedback
    (``converted`` and ``dismissed`` recommendation ids), with its data exported."""

    api: Api
    answers: dict[str, dict[str, Any]]
    converted: str
    dismissed: str
    exported: Path

    def env(self) -> dict[str, str]:
        return {
            "NBA_DATABASE_URL": self.api.store.url,
            "NBA_DATABASE_SCHEMA": self.api.store.schema or "",
        }


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    registry: TrainedRegistry,
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp(f"export-{request.param}")
    with open_api(request.param, directory, registry, exploration_rate=EXPLORATION_RATE) as api:
        accounts = api.account_ids[:SERVED_ACCOUNTS]
        answers = {a: recommendations(api, a, k=3) for a in accounts}
        api.flush()
        first, second = (answers[a]["actions"][0]["recommendation_id"] for a in accounts[:2])
        for rid, outcome in ((first, "converted"), (second, "dismissed")):
            response = api.client.post(
                "/v1/feedback",
                json={"recommendation_id": rid, "outcome": outcome},
                headers=api.headers(),
            )
            assert response.status_code == 201, response.text
        out = directory / "exported"
        result = CliRunner().invoke(
            cli,
            ["export", "--out", str(out), "--json"],
            env={"NBA_DATABASE_URL": api.store.url, "NBA_DATABASE_SCHEMA": api.store.schema or ""},
        )
        assert result.exit_code == 0, result.output
        yield Served(api, answers, first, second, out)


def _decisions(api: Api, account: str) -> int:
    with api.store.engine.connect() as conn:
        rows = conn.execute(select(ServedAction).where(ServedAction.account_id == account)).all()
    return len(rows)


def test_a_widget_reloaded_ten_times_is_one_decision(served: Served) -> None:
    api = served.api
    account = api.account_ids[-1]  # served nothing before
    views = []
    for _ in range(10):
        views.append(recommendations(api, account, k=1))
        api.flush()  # a person reloads after the served log's 50 ms
    kinds = [v["actions"][0]["kind"] for v in views]
    shown = [v["actions"][0]["content_id"] for v in views]
    # The first view may explore (30 %); the next, seeing a standing decision, does not: it
    # shows the greedy action, a new decision only if the first view explored another one.
    greedy_second = views[0]["explored"] and shown[1] != shown[0]
    assert kinds == ["decision"] * (1 + greedy_second) + ["impression"] * (9 - greedy_second)
    assert len(set(shown[1:])) == 1 and not any(v["explored"] for v in views[1:])
    assert _decisions(api, account) == 1 + greedy_second  # what the weekly caps count
    logged = logged_recommendations(api.store, account)
    # every view is in the log, kind and all (the fixed clock serves all at one time)
    assert sorted(r.kind for r in logged) == sorted(kinds)


def test_export_writes_each_decision_as_an_exposure_with_its_logged_propensity(
    served: Served,
) -> None:
    exposures = pd.read_parquet(served.exported / "exposures.parquet").set_index("exposure_id")
    logged = [r for a in served.answers for r in logged_recommendations(served.api.store, a)]
    decisions = [r for r in logged if r.kind == "decision"]
    assert len(decisions) == sum(len(a["actions"]) for a in served.answers.values())
    assert any(r.propensity < 1 for r in decisions)  # explored answers among them
    for r in decisions:
        row = exposures.loc[r.id]
        assert row["propensity"] == r.propensity  # exactly what the service logged
        assert (row["account_id"], row["content_id"], row["policy"]) == (
            r.account_id, r.content_id, r.policy,
        )  # fmt: skip
        assert row["position"] == r.rank and pd.Timestamp(row["ts"]).value == r.served_at
        # a top-slot decision logs what could have filled the slot, the served action
        # among it; the exploration draws uniformly among them, so each had at least
        # rate / their number
        if r.rank != 1:
            assert pd.isna(row["servable"]) and r.servable is None
            continue
        assert row["servable"] == r.servable
        servable = json.loads(r.servable)
        assert r.content_id in servable[r.contact_id or ""]
        n = sum(len(items) for items in servable.values())
        assert r.propensity >= EXPLORATION_RATE / n - 1e-12
    # the simulation's own exposures are there too, untouched
    # the service reads an account's exposures the same way: the loaded ones and its
    # decisions (more of them by now: other tests may have served since the export)
    online = served.api.store.accounts_data(served.api.account_ids).exposures
    loaded = online[online["policy"].isna()]
    assert len(exposures) == len(loaded) + len(decisions)
    assert set(exposures.index) <= set(online["exposure_id"])
    touchpoints = pd.read_parquet(served.exported / "touchpoints.parquet")
    converted = touchpoints[touchpoints["event_id"].str.startswith("feedback-")]
    action = next(
        a
        for answer in served.answers.values()
        for a in answer["actions"]
        if a["recommendation_id"] == served.converted
    )
    assert converted[["content_id", "event_type"]].values.tolist() == [
        [action["content_id"], "reply"]
    ]


def test_train_store_reads_what_train_data_reads_on_the_export(
    served: Served, tmp_path: Path
) -> None:
    api = served.api
    taxonomy = api.registry.taxonomy
    exported = tmp_path / "exported"  # now: other tests may have served more since
    result = CliRunner().invoke(cli, ["export", "--out", str(exported)], env=served.env())
    assert result.exit_code == 0, result.output
    assert "served decisions written as exposures" in result.output
    tables = store_tables(api.store.url, taxonomy, schema=api.store.schema)
    from_store = prepare_data(read_tables(tables, taxonomy), taxonomy, n_dates=6)
    from_files = prepare(exported, taxonomy, n_dates=6)
    assert from_store.as_of == from_files.as_of
    for name, frame in from_files.data.tables().items():
        pd.testing.assert_frame_equal(getattr(from_store.data, name), frame, check_exact=True)
    assert read_data_dir(exported, taxonomy).exposures["policy"].notna().any()
    # Training is a function of those tables: the command trains from the store (one run,
    # the cheapest model; a second from the files would repeat the same computation).
    # Nine as-of dates: the phase model's hindsight labels purge 60 days between splits.
    schema = ["--store-schema", api.store.schema] if api.store.schema else []
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(
        cli,
        ["train", "phase", "--store", api.store.url, *schema, "--as-of-dates", "9"]
        + ["--param", "n_estimators=5", "--json", "--tracking-uri", uri],
        env=served.env(),
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith('{"models"'))
    [summary] = json.loads(line)["models"]
    assert summary["registered"] == "nba-phase" and summary["primary_value"] is not None


def test_train_store_refuses_two_sources_and_a_missing_file(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "phase", "--store", "sqlite:///x.db", "--data", "d"])
    assert result.exit_code == 2 and "give one source" in result.output
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    result = runner.invoke(cli, ["train", "phase", "--store", missing])
    assert result.exit_code == 3 and "no SQLite file" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_decisions_served_at_one_moment_export_in_an_order_their_content_fixes() -> None:
    """Ids are random: among decisions of the same moment the order is by account,
    contact, rank and item, so the same decisions give the same training rows in the same
    order (a seeded fit's bagging draws rows by position)."""
    from types import SimpleNamespace

    from serving.store.served_exposures import _exposure_rows

    def decision(rid: str, account: str, contact: str | None, at: int) -> SimpleNamespace:
        return SimpleNamespace(
            id=rid, account_id=account, contact_id=contact, served_at=at, content_id="C1",
            propensity=0.5, rank=1, policy="p", servable=None,
        )  # fmt: skip

    found = [
        decision("f", "A2", "K1", 5),
        decision("a", "A1", "K2", 5),
        decision("z", "A1", "K1", 5),
        decision("m", "A3", None, 5),
        decision("b", "A9", "K1", 1),
    ]
    order = [(r[1], r[2]) for r in _exposure_rows(found, {"C1": "email"})]
    assert order == [("A9", "K1"), ("A1", "K1"), ("A1", "K2"), ("A2", "K1"), ("A3", None)]
    # the same decisions under other ids: the same order
    renamed = [SimpleNamespace(**{**vars(d), "id": str(9 - i)}) for i, d in enumerate(found)]
    assert [(r[1], r[2]) for r in _exposure_rows(renamed, {"C1": "email"})] == order
