"""Custom attributes in the service: stored by ``nba load`` and ingestion, read back as
columns, and the online features equal the batch ones; wrong values are rejected per record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import inspect

from features.pipeline import build_account_features, build_features
from features.pipeline.attributes import fit_attributes
from features.schema import JourneyData
from features.simulate import simulate
from features.taxonomy import Taxonomy, load_taxonomy
from serving.store import Store
from serving.store.engine import alembic_config
from tests.utils.data import ATTRIBUTES, with_attributes
from tests.utils.store import BACKENDS, open_store


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def data(taxonomy: Taxonomy) -> JourneyData:
    return with_attributes(simulate(40, seed=11, months=8, taxonomy=taxonomy).data, seed=2)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy, attributes=ATTRIBUTES) as opened:
        yield opened


def test_loaded_attributes_give_the_batch_features_online(
    store: Store, data: JourneyData, taxonomy: Taxonomy
) -> None:
    store.load_data(data)
    fitted = fit_attributes(data, ATTRIBUTES)
    now = data.touchpoints["ts"].max().ceil("D")
    batch = build_features(data, [now], taxonomy, attributes=fitted).set_index("account_id")
    # an account with a plan, touchpoint discounts and exposure placements
    busy = batch[batch["account_plan"].notna() & (batch["n_exposure_placement_banner_90d"] > 0)]
    account = str(busy["touchpoint_discount_sum_365d"].idxmax())
    stored = store.account_data(account)
    assert stored is not None
    assert stored.exposures["position"].notna().all()
    online = build_account_features(stored, account, now, taxonomy, attributes=fitted)
    pd.testing.assert_series_equal(online.drop("account_id"), batch.loc[account], check_names=False)


def _event(eid: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": eid,
        "account_id": "A1",
        "ts": "2024-06-20T10:00:00Z",
        "channel": "website",
        "event_type": "download",
    }
    return {**record, **changes}


def test_ingested_attributes_are_stored_and_wrong_ones_rejected(store: Store) -> None:
    now = pd.Timestamp("2025-01-01", tz="UTC")
    records = [
        _event(
            "E1",
            attributes={"lead_type": "inbound", "discount": 5},
            account={"attributes": {"plan": "pro", "seats": 12}},
        ),
        _event("E2", attributes={"discount": "5%"}),
        _event("E3", attributes={"coupon": "X"}),
        _event("E4", account={"attributes": {"seats": True}}),
        _event("E5", attributes=["inbound"]),
        _event("E6", attributes={"lead_type": 7, "discount": None}),
    ]
    result = store.ingest_events(records, now=now)
    assert result.accepted == 2
    assert [(e.index, e.field) for e in result.rejected] == [
        (1, "attributes.discount"),
        (2, "attributes.coupon"),
        (3, "account.attributes.seats"),
        (4, "attributes"),
    ]
    assert result.rejected[0].reason == "invalid number '5%'; expected a finite number"
    assert result.rejected[1].reason.startswith("unknown touchpoints attribute; expected ")
    data = store.account_data("A1")
    assert data is not None
    assert data.accounts[["plan", "seats"]].iloc[0].tolist() == ["pro", 12.0]
    tp = data.touchpoints.set_index("event_id")
    assert tp.loc["E1", "lead_type"] == "inbound" and tp.loc["E1", "discount"] == 5.0
    assert tp.loc["E6", "lead_type"] == "7" and pd.isna(tp.loc["E6", "discount"])


def test_migration_0007_downgrades_and_upgrades_with_the_rows_kept(
    store: Store, data: JourneyData
) -> None:
    store.load_data(data)

    def columns(table: str) -> set[str]:
        with store.engine.connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns(table, schema=store.schema)}

    config = alembic_config()
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            # as the store migrates: batch mode rebuilds tables that rows refer to, so
            # SQLite's foreign keys are off meanwhile (set outside a transaction)
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
        with conn.begin():
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
        if store.dialect == "sqlite":
            raw.execute("PRAGMA foreign_keys=ON")
    assert "attributes" not in columns("accounts") | columns("touchpoints")
    assert not {"attributes", "position"} & columns("exposures")
    assert store.migrate() == "0014"
    assert {"attributes", "position"} <= columns("exposures")
    loaded = store.accounts_data([str(data.accounts["account_id"].iloc[0])])
    assert len(loaded.touchpoints) > 0 and "plan" not in loaded.accounts  # dropped with 0007
