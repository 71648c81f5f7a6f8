"""Rep binding is an attribute of the key, never its name, on SQLite and PostgreSQL: keys
carry a rep (``nba keys create --rep``, migration 0004 for keys named ``rep:<id>`` before),
reading worklists needs ``worklists:read``, a rep's key reads and gives feedback on its own
rep's worklist and accounts only, and reads of accounts the store does not hold create no
account and no per-account state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from typer.testing import CliRunner

from features.pipeline import select_accounts
from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import to_ns
from nba.cli import app as cli
from serving.store import InvalidRepError, Store
from serving.store.tables import DismissedItem, Feedback, ServedAction
from tests.utils.api import Api
from tests.utils.store import BACKENDS, logged_recommendations, open_store

READ_AND_FEEDBACK = ["recommendations:read", "feedback:write"]
REP_SCOPES = ["recommendations:read", "worklists:read", "feedback:write"]


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy) as opened:
        yield opened


# -- keys in the store, the CLI and the migration ---------------------------------------------


def test_a_key_carries_its_rep_and_its_name_means_nothing(store: Store) -> None:
    bound = store.create_api_key("R014-laptop", REP_SCOPES, rep_id="R014")
    named = store.create_api_key("rep:R015", REP_SCOPES)
    bound_key, named_key = store.verify_api_key(bound), store.verify_api_key(named)
    assert bound_key is not None and bound_key.rep_id == "R014"
    assert named_key is not None and named_key.rep_id is None
    assert [(k.name, k.rep_id) for k in store.api_keys()] == [
        ("R014-laptop", "R014"),
        ("rep:R015", None),
    ]
    for rep in ("", " R014"):
        with pytest.raises(InvalidRepError, match="expected a rep id"):
            store.create_api_key("bad", REP_SCOPES, rep_id=rep)
    with pytest.raises(InvalidRepError, match="an admin key reads every rep's accounts"):
        store.create_api_key("bad", ["admin"], rep_id="R014")
    assert len(store.api_keys()) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_nba_keys_create_rep_and_list(backend: str, tmp_path: Path, taxonomy: Taxonomy) -> None:
    runner = CliRunner()
    with open_store(backend, tmp_path, taxonomy) as store:
        env = {"NBA_DATABASE_URL": store.url, "NBA_DATABASE_SCHEMA": store.schema or ""}
        created = runner.invoke(
            cli,
            ["keys", "create", "--name", "laptop", "--scopes", ",".join(REP_SCOPES)]
            + ["--rep", "R014"],
            env=env,
        )
        assert created.exit_code == 0, created.output
        key = store.verify_api_key(created.output.strip().splitlines()[-1])
        assert key is not None and key.rep_id == "R014"
        widget = runner.invoke(
            cli,
            ["keys", "create", "--name", "crm-widget", "--scopes", ",".join(READ_AND_FEEDBACK)],
            env=env,
        )
        assert widget.exit_code == 0, widget.output
        admin = runner.invoke(
            cli, ["keys", "create", "--name", "x", "--scopes", "admin", "--rep", "R014"], env=env
        )
        assert admin.exit_code == 2 and "an admin key reads every rep's" in admin.output

        listed = runner.invoke(cli, ["keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.output.strip().splitlines()]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("laptop", "feedback:write,recommendations:read,worklists:read", "active", "rep R014"),
        ("crm-widget", "feedback:write,recommendations:read", "active", "no rep"),
    ]


_OLD_KEYS = sa.table(
    "api_keys",
    sa.column("key_id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("salt", sa.LargeBinary()),
    sa.column("key_hash", sa.LargeBinary()),
    sa.column("scopes", sa.JSON()),
    sa.column("created_at", sa.BigInteger()),
    sa.column("revoked_at", sa.BigInteger()),
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0004_binds_the_keys_the_old_name_rule_bound(
    backend: str, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    # (name, scopes, revoked) as 0003 stored them
    old: list[tuple[str, list[str], bool]] = [
        ("rep:R014", READ_AND_FEEDBACK, False),  # a rep's key: keeps its own worklist
        ("rep:R015", ["feedback:write"], False),  # bound, but it never read worklists
        ("Rep:R016", READ_AND_FEEDBACK, False),  # the old rule was case-sensitive
        ("crm-widget", READ_AND_FEEDBACK, False),  # read every worklist: not any more
        ("rep:R017", ["admin"], False),  # admin reads everything, before and after
        ("rep:", READ_AND_FEEDBACK, False),
        ("rep:R018", READ_AND_FEEDBACK, True),
    ]
    with open_store(backend, tmp_path, taxonomy, revision="0003") as store:
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(_OLD_KEYS),
                [
                    {"key_id": f"{i:016x}", "name": name, "salt": b"\0" * 16,
                     "key_hash": b"\0" * 32, "scopes": scopes, "created_at": to_ns(pd.Timestamp(0)),
                     "revoked_at": 1 if revoked else None}
                    for i, (name, scopes, revoked) in enumerate(old)
                ],
            )  # fmt: skip
        assert store.migrate() == "0014"
        keys = {k.name: (k.rep_id, sorted(k.scopes)) for k in store.api_keys()}
    unchanged = sorted(READ_AND_FEEDBACK)
    assert keys == {
        "rep:R014": ("R014", ["feedback:write", "recommendations:read", "worklists:read"]),
        "rep:R015": ("R015", ["feedback:write"]),
        "Rep:R016": (None, unchanged),
        "crm-widget": (None, unchanged),
        "rep:R017": (None, ["admin"]),
        "rep:": (None, unchanged),
        "rep:R018": (None, unchanged),
    }


# -- the API ----------------------------------------------------------------------------------


def _reps(api: Api) -> tuple[str, str, dict[str, str]]:
    """Two reps with loaded accounts (the one with most first) and each account's owner."""
    accounts = select_accounts(api.registry.data, api.account_ids).accounts
    ids, reps = accounts["account_id"].astype(str), accounts["owner_rep_id"].astype(str)
    owners = dict(zip(ids, reps, strict=True))
    ranked = pd.Series(owners).value_counts()
    return str(ranked.index[0]), str(ranked.index[1]), owners


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_without_a_rep_or_worklists_read_get_no_worklist_whatever_their_name(
    api: Api,
) -> None:
    rep, _, _ = _reps(api)
    # Before, "Rep:<id>" (not the exact prefix) and "crm-widget" (the README's own example)
    # were unbound service keys that read every rep's worklist.
    for name in (f"Rep:{rep}", "crm-widget", f"rep:{rep}-phone", "widget:crm"):
        key = api.store.create_api_key(name, READ_AND_FEEDBACK)
        denied = api.client.get(f"/v1/reps/{rep}/actions", headers=_bearer(key))
        assert denied.status_code == 403, (name, denied.text)
        assert "lacks scope 'worklists:read'" in denied.json()["detail"]


def test_a_rep_key_reads_only_its_own_worklist_and_accounts(api: Api) -> None:
    rep, other, owners = _reps(api)
    key = _bearer(api.store.create_api_key(f"laptop-of-{rep}", REP_SCOPES, rep_id=rep))
    own = api.client.get(f"/v1/reps/{rep}/actions", headers=key)
    assert own.status_code == 200, own.text
    assert {i["account_id"] for i in own.json()["items"]} == {
        a for a, owner in owners.items() if owner == rep
    }
    denied = api.client.get(f"/v1/reps/{other}/actions", headers=key)
    assert denied.status_code == 403
    assert denied.json()["detail"] == (
        f"API key 'laptop-of-{rep}' is bound to rep '{rep}'; it cannot read the worklist of "
        f"rep '{other}'"
    )
    mine = next(a for a, owner in owners.items() if owner == rep)
    theirs = next(a for a, owner in owners.items() if owner == other)
    for path in ("recommendations", "touchpoints"):
        assert api.client.get(f"/v1/accounts/{mine}/{path}", headers=key).status_code == 200
        assert api.client.get(f"/v1/accounts/{theirs}/{path}", headers=key).status_code == 403
    # A key without a rep but with worklists:read (a server-side sync) reads any rep's.
    sync = _bearer(api.store.create_api_key("crm-sync", ["worklists:read"]))
    assert api.client.get(f"/v1/reps/{other}/actions", headers=sync).status_code == 200


def _served_action(api: Api, account_id: str) -> dict[str, Any]:
    """The top action an admin read served for ``account_id`` (written to the store)."""
    response = api.client.get(
        f"/v1/accounts/{account_id}/recommendations", params={"k": 1}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    api.flush()
    action: dict[str, Any] = response.json()["actions"][0]
    return action


def _stored_feedback(api: Api, recommendation_id: str) -> list[str]:
    with api.store.engine.connect() as conn:
        rows = conn.execute(
            select(Feedback.outcome).where(Feedback.recommendation_id == recommendation_id)
        )
        return list(rows.scalars())


def _dismissed(api: Api, account_id: str) -> list[str]:
    with api.store.engine.connect() as conn:
        rows = conn.execute(
            select(DismissedItem.content_id).where(DismissedItem.account_id == account_id)
        )
        return list(rows.scalars())


def test_a_rep_key_gives_feedback_only_on_its_own_accounts(api: Api) -> None:
    rep, other, owners = _reps(api)
    mine = next(a for a, owner in owners.items() if owner == rep)
    theirs = next(a for a, owner in owners.items() if owner == other)
    key = _bearer(api.store.create_api_key(f"tablet-of-{rep}", REP_SCOPES, rep_id=rep))
    foreign = _served_action(api, theirs)
    dismissed_before = _dismissed(api, theirs)

    body = {"recommendation_id": foreign["recommendation_id"], "outcome": "dismissed"}
    denied = api.client.post("/v1/feedback", json=body, headers=key)
    assert denied.status_code == 403, denied.text
    assert denied.json()["detail"] == (
        f"feedback.recommendation_id {foreign['recommendation_id']!r} was served for account "
        f"{theirs!r}, which belongs to another rep; a key bound to rep {rep!r} gives feedback "
        "only on that rep's accounts"
    )
    assert _stored_feedback(api, foreign["recommendation_id"]) == []
    assert _dismissed(api, theirs) == dismissed_before

    own = _served_action(api, mine)
    accepted = api.client.post(
        "/v1/feedback",
        json={"recommendation_id": own["recommendation_id"], "outcome": "accepted"},
        headers=key,
    )
    assert accepted.status_code == 201, accepted.text
    assert _stored_feedback(api, own["recommendation_id"]) == ["accepted"]
    # keys without a rep are unchanged: any account's recommendation
    widget = _bearer(api.store.create_api_key(f"widget-{rep}", READ_AND_FEEDBACK))
    shown = {"recommendation_id": foreign["recommendation_id"], "outcome": "shown"}
    assert api.client.post("/v1/feedback", json=shown, headers=widget).status_code == 201
    assert _stored_feedback(api, foreign["recommendation_id"]) == ["shown"]


def test_reads_of_unknown_accounts_create_no_account_and_no_account_state(api: Api) -> None:
    reader = _bearer(api.store.create_api_key("reader", ["recommendations:read"]))
    accounts_before = api.store.counts()["accounts"]
    unknown = [f"made-up-{i}" for i in range(3)]
    got = api.client.get(f"/v1/accounts/{unknown[0]}/recommendations", headers=reader)
    posted = api.client.post("/v1/recommendations", json={"account_id": unknown[1]}, headers=reader)
    timeline = api.client.get(f"/v1/accounts/{unknown[2]}/touchpoints", headers=reader)
    assert got.status_code == posted.status_code == timeline.status_code == 200
    assert got.json()["cold_start"] and posted.json()["cold_start"]
    api.flush()
    assert api.store.counts()["accounts"] == accounts_before
    with api.store.engine.connect() as conn:
        state = conn.execute(
            select(func.count())
            .select_from(ServedAction)
            .where(ServedAction.account_id.in_(unknown))
        ).scalar_one()
    assert state == 0
    # The cold-start answers stay in the decision log, with the propensities off-policy
    # evaluation needs (and so the widget's feedback on them is kept).
    for account_id, answer in zip(unknown, (got, posted), strict=False):
        logged = logged_recommendations(api.store, account_id)
        assert [r.id for r in logged] == [a["recommendation_id"] for a in answer.json()["actions"]]
        assert all(r.policy == "cold-start-popular" and r.propensity > 0 for r in logged)
