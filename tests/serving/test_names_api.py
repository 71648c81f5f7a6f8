"""Names, units and horizons in the API's answers: accounts and contacts by name (null
where the store has none), the value unit NBA_CURRENCY sets, the outcome horizons the served
models declare, and what changed since the last recommendation."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from features.pipeline import select_accounts
from serving.settings import Settings, SettingsError
from tests.utils.api import Api, loaded_accounts, open_api, recommendations
from tests.utils.registry import TrainedRegistry


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[Api]:
    ids = loaded_accounts(trained_registry)
    data = select_accounts(trained_registry.data, ids)
    # the last account and its contacts have no names: the answers say null
    unnamed = ids[-1]
    data.accounts.loc[data.accounts["account_id"] == unnamed, "name"] = None
    data.contacts.loc[data.contacts["account_id"] == unnamed, "name"] = None
    directory = tmp_path_factory.mktemp("names-api")
    with open_api("sqlite", directory, trained_registry, data=data, currency="EUR") as opened:
        yield opened


def test_answers_name_the_account_and_the_contacts_with_unit_and_horizon(api: Api) -> None:
    data = api.registry.data
    names = data.accounts.set_index("account_id")["name"]
    contacts = data.contacts.set_index("contact_id")["name"]
    checked = 0
    for account in api.account_ids[:-1]:
        body = recommendations(api, account, k=5)
        assert body["account_name"] == names[account]
        assert body["value_unit"] == "EUR"
        assert body["horizon_days"] == {"churn": 90}
        for action in body["actions"]:
            if action["contact_id"] is not None:
                assert action["contact_name"] == contacts[action["contact_id"]]
                checked += 1
    assert checked > 0


def test_missing_names_are_null_and_unknown_accounts_have_none(api: Api) -> None:
    body = recommendations(api, api.account_ids[-1], k=5)
    assert body["account_name"] is None
    assert all(a["contact_name"] is None for a in body["actions"])
    unknown = recommendations(api, "A-never-seen", k=3)
    assert unknown["known"] is False and unknown["account_name"] is None
    assert unknown["since_last_visit"] is None and unknown["value_unit"] == "EUR"


def test_what_changed_since_the_last_recommendation(api: Api) -> None:
    account = api.account_ids[0]
    first = recommendations(api, account, k=3)
    assert first["actions"], "no action decided: nothing to compare with"
    api.flush()
    # the clock stands still in these tests: the event is later than nothing decided yet,
    # so the decision just made is the last visit and the touchpoints since are counted
    then = pd.Timestamp(first["as_of"])
    stored = api.client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": "since-1",
                    "account_id": account,
                    "ts": (then - pd.Timedelta(seconds=1)).isoformat(),
                    "channel": "website",
                    "event_type": "download",
                }
            ]
        },
        headers=api.headers(),
    )
    assert stored.status_code == 200 and stored.json()["accepted"] == 1
    second = recommendations(api, account, k=3)
    changes = second["since_last_visit"]
    assert changes is not None
    assert pd.Timestamp(changes["since"]) == then
    # an event at or before the last visit is not news
    assert changes["touchpoints"] == 0 and changes["text"] == "nothing new"


def test_worklist_and_timeline_name_accounts_and_contacts(api: Api) -> None:
    data = api.registry.data
    accounts = data.accounts.set_index("account_id")
    rep = str(accounts.loc[api.account_ids[0], "owner_rep_id"])
    worklist = api.client.get(f"/v1/reps/{rep}/actions", headers=api.headers())
    assert worklist.status_code == 200, worklist.text
    body = worklist.json()
    assert body["value_unit"] == "EUR" and body["horizon_days"] == {"churn": 90}
    for item in body["items"]:
        expected = (
            None
            if item["account_id"] == api.account_ids[-1]
            else accounts.loc[item["account_id"], "name"]
        )
        assert item["account_name"] == expected
    timeline = api.client.get(
        f"/v1/accounts/{api.account_ids[0]}/touchpoints", headers=api.headers()
    ).json()
    contacts = data.contacts.set_index("contact_id")["name"]
    named = [t for t in timeline["touchpoints"] if t["contact_id"]]
    assert named and all(t["contact_name"] == contacts[t["contact_id"]] for t in named)


def test_a_currency_is_an_iso_code() -> None:
    assert Settings.from_env({}).value_unit == "points"
    assert Settings.from_env({"NBA_CURRENCY": "USD"}).value_unit == "USD"
    with pytest.raises(SettingsError, match="NBA_CURRENCY='euro'"):
        Settings.from_env({"NBA_CURRENCY": "euro"})
