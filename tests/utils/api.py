"""The HTTP API under test: the app over a store loaded with a slice of the trained
registry's simulation, scoring at a fixed clock (the end of the simulated period) with
exploration and online learning off, driven through FastAPI's TestClient with one key per
scope."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from features.pipeline import select_accounts
from features.schema import JourneyData
from serving.app import create_app
from serving.routes import Services
from serving.settings import Settings
from serving.store import API_KEY_SCOPES, Store
from tests.utils.registry import TrainedRegistry
from tests.utils.store import open_store

N_ACCOUNTS = 120
MAX_EVENTS = 50
MAX_BODY = 64 * 1024


@dataclass
class Api:
    """A running app (lifespan entered) with one key per scope."""

    client: TestClient
    store: Store
    registry: TrainedRegistry
    keys: dict[str, str]
    account_ids: list[str]

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def flush(self) -> None:
        """Write the served actions the app's served log holds (it writes in batches)."""
        services: Services = self.client.app.state.services  # type: ignore[attr-defined]
        services.served_log.flush()

    @property
    def now(self) -> pd.Timestamp:
        return self.registry.now


def loaded_accounts(registry: TrainedRegistry, n: int = N_ACCOUNTS) -> list[str]:
    """The first ``n`` accounts (by id) that exist and have a contact at the clock."""
    contacts = registry.data.contacts
    alive = contacts.loc[contacts["created_at"] < registry.now, "account_id"].astype(str)
    return sorted(alive.unique())[:n]


@contextmanager
def open_api(
    backend: str,
    directory: Path,
    registry: TrainedRegistry,
    *,
    data: JourneyData | None = None,
    **overrides: Any,
) -> Iterator[Api]:
    """A store on ``backend`` loaded with ``data`` (default: a slice of the simulation),
    and the app over it."""
    with open_store(backend, directory, registry.taxonomy) as store:
        if data is None:
            data = select_accounts(registry.data, loaded_accounts(registry))
        ids = sorted(data.accounts["account_id"].astype(str))
        store.load_data(data)
        keys = {scope: store.create_api_key(f"test-{scope}", [scope]) for scope in API_KEY_SCOPES}
        # exploration and learning between retrains off (the greedy policy: answers the
        # tests can predict) and a fixed seed unless the test overrides them
        settings = Settings(
            database_url=store.url,
            database_schema=store.schema,
            tracking_uri=registry.tracking_uri,
            reload_interval_s=0,
            max_events_per_request=MAX_EVENTS,
            max_body_bytes=MAX_BODY,
            **{"exploration_rate": 0.0, "random_seed": 0, "online_learning": False, **overrides},
        )
        app = create_app(settings, clock=lambda: registry.now)
        with TestClient(app) as client:
            yield Api(client, store, registry, keys, ids)


def event(eid: str, account: str = "A-new-1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": eid,
        "account_id": account,
        "contact_id": f"{account}-P1",
        "ts": "2025-06-20T10:00:00Z",
        "channel": "website",
        "event_type": "download",
        "content_id": "C027",
        "value": None,
        "account": {"industry": "software", "employees": 40, "region": "dach"},
        "contact": {"role": "it"},
    }
    record.update(changes)
    return record


def recommendations(api: Api, account: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(
        f"/v1/accounts/{account}/recommendations", params=params, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
