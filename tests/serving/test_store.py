"""The store against SQLite (a temporary file) and the local PostgreSQL (a fresh schema per
test, dropped afterwards): migrations, bulk load, account views equal to the batch pipeline,
data versions, recommendations and feedback, API keys."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from features.pipeline import build_account_features, build_features, select_accounts
from features.schema import JourneyData, with_all_columns
from features.simulate import simulate
from features.taxonomy import Taxonomy, load_taxonomy
from features.timestamps import to_ns
from serving.scoring import content_popularity
from serving.store import (
    AccountActivity,
    DuplicateApiKeyError,
    InvalidOutcomeError,
    NewRecommendation,
    ServedLog,
    Store,
    UnknownApiKeyError,
    UnknownRecommendationError,
    UnknownScopeError,
)
from serving.store.engine import alembic_config
from serving.store.tables import (
    ApiKeyRow,
    Base,
    DismissedItem,
    Feedback,
    Recommendation,
    ServedAction,
)
from tests.utils.data import make_tiny_data
from tests.utils.store import (
    BACKENDS,
    POSTGRES_AVAILABLE,
    POSTGRES_URL,
    logged_recommendations,
    open_store,
)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, taxonomy: Taxonomy) -> Iterator[Store]:
    with open_store(request.param, tmp_path, taxonomy) as opened:
        yield opened


@pytest.fixture
def tiny(taxonomy: Taxonomy) -> JourneyData:
    return make_tiny_data(taxonomy)


@pytest.fixture(scope="module")
def simulation(taxonomy: Taxonomy) -> JourneyData:
    return simulate(60, 11, start="2024-01-01", months=12, taxonomy=taxonomy).data


# -- migrations -------------------------------------------------------------------------------


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    assert store.revision() == "0014"
    before = store.counts()
    assert store.migrate() == "0014"
    assert store.counts() == before
    # The taxonomy's catalog is seeded once; everything else starts empty.
    assert before["content"] == 94
    assert sum(n for name, n in before.items() if name != "content") == 0
    assert store.ping()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_migrations_take_turns(backend: str, tmp_path: Path, taxonomy: Taxonomy) -> None:
    if backend == "sqlite":
        stores = [Store(f"sqlite:///{tmp_path / 'race.db'}", taxonomy) for _ in range(3)]
    else:
        schema = f"test_race_{uuid.uuid4().hex[:12]}"
        stores = [Store(POSTGRES_URL, taxonomy, schema=schema) for _ in range(3)]
    errors: list[BaseException] = []

    def run(s: Store) -> None:
        try:
            s.migrate()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert [s.revision() for s in stores] == ["0014"] * 3
    finally:
        for s in stores:
            s.dispose()
        if backend != "sqlite":
            engine = create_engine(POSTGRES_URL)
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(
    tmp_path: Path, taxonomy: Taxonomy, tiny: JourneyData
) -> None:
    with open_store("sqlite", tmp_path, taxonomy) as store:
        store.load_data(tiny)  # switches foreign-key checks off while it runs
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


# -- bulk load and account views ------------------------------------------------------------


def test_account_data_is_the_accounts_rows_in_canonical_form(
    store: Store, tiny: JourneyData
) -> None:
    result = store.load_data(tiny)
    assert result.stored_rows == {
        "accounts": 3,
        "contacts": 5,
        "content": 94,
        "touchpoints": 12,
        "stages": 5,
        "exposures": 4,
    }
    got = store.account_data("A1")
    assert got is not None
    expected = select_accounts(tiny, ["A1"])
    for name, frame in expected.tables().items():
        pd.testing.assert_frame_equal(
            getattr(got, name).reset_index(drop=True), frame.reset_index(drop=True), obj=name
        )
    assert store.account_data("nope") is None


def test_loading_twice_stores_no_event_twice(store: Store, tiny: JourneyData) -> None:
    store.load_data(tiny)
    again = store.load_data(tiny)
    assert again.stored_rows["touchpoints"] == 0
    assert again.stored_rows["stages"] == 0
    assert again.stored_rows["exposures"] == 0
    counts = store.counts()
    assert (counts["accounts"], counts["touchpoints"], counts["stages"]) == (3, 12, 5)


def test_loading_what_the_data_lacks_keeps_what_the_store_knows(
    store: Store, tiny: JourneyData, taxonomy: Taxonomy
) -> None:
    store.load_data(tiny)
    # the same accounts and items again, described by nothing but their ids
    bare = JourneyData(
        accounts=with_all_columns("accounts", tiny.accounts[["account_id"]], taxonomy),
        contacts=tiny.contacts.iloc[:0],
        touchpoints=tiny.touchpoints.iloc[:0],
        content=with_all_columns("content", tiny.content[["content_id"]], taxonomy),
        stages=tiny.stages.iloc[:0],
        exposures=tiny.exposures.iloc[:0],
    )

    store.load_data(bare)

    got = store.account_data("A1")
    assert got is not None
    pd.testing.assert_frame_equal(got.accounts, select_accounts(tiny, ["A1"]).accounts)
    pd.testing.assert_frame_equal(store.content(), tiny.content)


def test_an_account_and_items_without_descriptions_are_stored_as_missing(
    store: Store, tiny: JourneyData, taxonomy: Taxonomy
) -> None:
    accounts = with_all_columns("accounts", pd.DataFrame({"account_id": ["B1"]}), taxonomy)
    content = with_all_columns("content", pd.DataFrame({"content_id": ["G1"]}), taxonomy)
    store.load_data(
        JourneyData(
            accounts=accounts,
            contacts=tiny.contacts.iloc[:0],
            touchpoints=tiny.touchpoints.iloc[:0],
            content=content,
            stages=tiny.stages.iloc[:0],
            exposures=tiny.exposures.iloc[:0],
        )
    )

    got = store.account_data("B1")

    assert got is not None
    pd.testing.assert_frame_equal(got.accounts, accounts)
    pd.testing.assert_frame_equal(
        got.content[got.content["content_id"] == "G1"].reset_index(drop=True), content
    )


def test_online_features_equal_the_batch_pipeline(
    store: Store, simulation: JourneyData, taxonomy: Taxonomy
) -> None:
    store.load_data(simulation, chunk_rows=2_000)  # several chunks per table
    end = simulation.touchpoints["ts"].max().normalize()
    dates = [end - pd.Timedelta(days=90), end]
    batch = build_features(simulation, dates, taxonomy).set_index(["as_of", "account_id"])
    accounts = simulation.accounts["account_id"].iloc[::7].tolist()
    compared = 0
    for account_id in accounts:
        data = store.account_data(account_id)
        assert data is not None
        for as_of in dates:
            if (as_of, account_id) not in batch.index:
                continue  # account created after as_of
            online = build_account_features(data, account_id, as_of, taxonomy)
            expected = batch.loc[(as_of, account_id)]
            pd.testing.assert_series_equal(
                online.drop(["account_id", "as_of"]), expected, check_names=False
            )
            compared += 1
    assert compared >= 12


def test_content_popularity_counts_response_touchpoints_in_the_database(
    store: Store, simulation: JourneyData
) -> None:
    assert store.content_popularity() == {}
    store.load_data(simulation)
    popularity = store.content_popularity()
    assert popularity and popularity == content_popularity(simulation.touchpoints)


def test_accounts_of_rep(store: Store, tiny: JourneyData) -> None:
    store.load_data(tiny)
    assert store.accounts_of_rep("R1") == ["A1", "A3"]
    assert store.accounts_of_rep("R2") == ["A2"]
    assert store.accounts_of_rep("R9") == []


# -- data versions ------------------------------------------------------------------------------


def _data_version(store: Store, account_id: str) -> int:
    week_ago = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=7)
    activity = store.account_activity(account_id, served_since=week_ago, dismissed_since=week_ago)
    assert activity is not None
    return activity.data_version


def test_new_data_bumps_the_accounts_data_version(store: Store, tiny: JourneyData) -> None:
    store.load_data(tiny)
    a1, a2 = _data_version(store, "A1"), _data_version(store, "A2")
    event = {"event_id": "E99", "account_id": "A1", "ts": "2024-07-02T10:00:00Z"}
    result = store.ingest_events([{**event, "channel": "website", "event_type": "view"}])
    # An ingested event bumps its account's version (what keys the scorer's feature cache),
    # and only that account's; a duplicate changes nothing.
    assert result.account_ids == {"A1"}
    assert (_data_version(store, "A1"), _data_version(store, "A2")) == (a1 + 1, a2)
    store.ingest_events([{**event, "channel": "website", "event_type": "view"}])
    assert _data_version(store, "A1") == a1 + 1
    # A load bumps every account.
    store.load_data(tiny)
    assert (_data_version(store, "A1"), _data_version(store, "A2")) == (a1 + 2, a2 + 1)


# -- recommendations and feedback ---------------------------------------------------------------


def _served(account_id: str, content_id: str, rank: int) -> NewRecommendation:
    return NewRecommendation(
        request_id="req-1",
        account_id=account_id,
        contact_id="P1",
        content_id=content_id,
        rank=rank,
        expected_value=0.25 / rank,
        propensity=0.98 if rank == 1 else 0.01,
        policy="champion-eps0.02",
        model_versions={"nba-phase": "3", "nba-churn": "2"},
    )


def test_recommendations_and_feedback(store: Store) -> None:
    t0 = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    ids = store.log_recommendations(
        [_served("A1", "C007", 1), _served("A1", "C040", 2)], served_at=t0
    )
    store.log_recommendations([_served("A2", "C009", 1)], served_at=t0)
    later = store.log_recommendations(
        [_served("A1", "C044", 1)], served_at=t0 + pd.Timedelta(days=3)
    )
    assert len(ids) == 2 and len(set(ids + later)) == 3

    served = logged_recommendations(store, "A1", t0)
    assert [(s.content_id, s.rank) for s in served] == [("C007", 1), ("C040", 2), ("C044", 1)]
    assert served[0].propensity == 0.98
    assert served[0].model_versions == {"nba-phase": "3", "nba-churn": "2"}
    assert served[0].served_at == to_ns(t0)
    day_later = logged_recommendations(store, "A1", t0 + pd.Timedelta(days=1))
    assert [s.content_id for s in day_later] == ["C044"]

    first = store.record_feedback(ids[0], "shown", t0 + pd.Timedelta(minutes=1))
    second = store.record_feedback(ids[1], "dismissed", t0 + pd.Timedelta(minutes=2), "not now")
    assert second > first
    with store.engine.connect() as conn:
        feedback = conn.execute(select(Feedback.__table__).order_by(Feedback.id)).all()
    assert [(f.recommendation_id, f.outcome, f.note) for f in feedback] == [
        (ids[0], "shown", None),
        (ids[1], "dismissed", "not now"),
    ]
    assert [f.at for f in feedback] == [to_ns(t0 + pd.Timedelta(minutes=m)) for m in (1, 2)]


def test_feedback_for_an_unknown_recommendation_is_an_error(store: Store) -> None:
    with pytest.raises(UnknownRecommendationError, match="'nope' is unknown"):
        store.record_feedback("nope", "accepted")
    [rec_id] = store.log_recommendations([_served("A1", "C007", 1)])
    with pytest.raises(InvalidOutcomeError, match="'liked' is unknown; expected one of: shown"):
        store.record_feedback(rec_id, "liked")
    # The database enforces the reference as well (foreign keys are on in SQLite too).
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(
            insert(Feedback),
            {"recommendation_id": "nope", "outcome": "shown", "at": 0, "note": None},
        )


# -- API keys -------------------------------------------------------------------------------------


def test_api_keys_are_stored_hashed_and_verified(store: Store) -> None:
    plaintext = store.create_api_key("crm-widget", ["recommendations:read", "feedback:write"])
    key = store.verify_api_key(plaintext)
    assert key is not None
    assert key.name == "crm-widget"
    assert key.scopes == {"recommendations:read", "feedback:write"}
    assert key.allows("feedback:write") and not key.allows("events:write")

    # Neither the key nor its secret part is stored anywhere in the row.
    secret = plaintext.split("_", 2)[2]  # nba_<key id>_<secret>; the secret may hold "_"
    with store.engine.connect() as conn:
        row = conn.execute(select(ApiKeyRow.__table__)).one()
    stored = " ".join(str(v) for v in row) + " ".join(v.hex() for v in row if isinstance(v, bytes))
    assert secret not in stored and plaintext not in stored

    assert store.verify_api_key(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    assert store.verify_api_key("nba_0000000000000000_x") is None
    assert store.verify_api_key("garbage") is None
    assert store.verify_api_key("") is None


def test_api_key_names_scopes_and_revocation(store: Store) -> None:
    admin = store.create_api_key("ops", ["admin"])
    with pytest.raises(DuplicateApiKeyError, match="'ops' is in use"):
        store.create_api_key("ops", ["events:write"])
    with pytest.raises(UnknownScopeError, match="'events:read'"):
        store.create_api_key("bad", ["events:read"])
    key = store.verify_api_key(admin)
    assert key is not None and key.allows("events:write")

    store.revoke_api_key("ops")
    assert store.verify_api_key(admin) is None
    with pytest.raises(UnknownApiKeyError):
        store.revoke_api_key("ops")
    # The name is free again for a new key; the revoked one stays on record.
    renewed = store.create_api_key("ops", ["events:write"])
    assert store.verify_api_key(renewed) is not None
    keys = store.api_keys()
    assert [(k.name, k.revoked_at is None) for k in keys] == [("ops", False), ("ops", True)]


def test_postgres_schema_is_isolated(taxonomy: Taxonomy, tmp_path: Path) -> None:
    if not POSTGRES_AVAILABLE:
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    with (
        open_store("postgres", tmp_path, taxonomy) as a,
        open_store("postgres", tmp_path, taxonomy) as b,
    ):
        a.create_api_key("only-in-a", ["admin"])
        assert [k.name for k in a.api_keys()] == ["only-in-a"]
        assert b.api_keys() == []
        with a.engine.connect() as conn:
            assert conn.execute(text("SELECT current_schema()")).scalar() == a.schema


# -- the request path's reads and the served log ------------------------------------------------


def test_account_activity_reads_version_served_actions_and_dismissals(
    store: Store, tiny: JourneyData
) -> None:
    store.load_data(tiny)
    t0 = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    week_ago = t0 - pd.Timedelta(days=7)
    assert store.account_activity("nope", served_since=week_ago, dismissed_since=week_ago) is None
    ids = store.log_recommendations(
        [_served("A1", "C007", 1), _served("A1", "C040", 2)], served_at=t0
    )
    store.log_recommendations([_served("A1", "C007", 1)], served_at=t0 + pd.Timedelta(hours=1))
    store.log_recommendations([_served("A1", "C009", 1)], served_at=t0 - pd.Timedelta(days=8))
    store.record_feedback(ids[1], "dismissed", t0 + pd.Timedelta(minutes=5))
    store.record_feedback(ids[0], "shown", t0 + pd.Timedelta(minutes=5))

    activity = store.account_activity("A1", served_since=week_ago, dismissed_since=week_ago)
    assert activity is not None
    assert activity.data_version == 1  # set by the load
    # one row per distinct action, with its last serving time; the 8-day-old one is out
    assert sorted(activity.served) == [
        ("P1", "C007", to_ns(t0 + pd.Timedelta(hours=1))),
        ("P1", "C040", to_ns(t0)),
    ]
    assert activity.dismissed == [("C040", to_ns(t0 + pd.Timedelta(minutes=5)))]
    later = t0 + pd.Timedelta(days=1)
    assert store.account_activity("A1", served_since=later, dismissed_since=later) == (
        AccountActivity(
            data_version=activity.data_version,
            owner_rep_id="R1",
            served=[],
            dismissed=[],
            # the last visit is the last serving, however long ago; nothing happened since
            last_served_ns=to_ns(t0 + pd.Timedelta(hours=1)),
        )
    )


class _FailingOnce:
    """A store whose first write fails (a locked or unreachable database)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0

    def log_recommendations(self, items: list[NewRecommendation]) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return self.store.log_recommendations(items)


def _ids(store: Store, account_id: str) -> set[str]:
    return {r.id for r in logged_recommendations(store, account_id)}


def test_the_served_log_hands_out_ids_at_once_and_writes_them_in_batches(store: Store) -> None:
    t0 = pd.Timestamp("2025-03-01 12:00", tz="UTC")
    served_log = ServedLog(store, flush_interval_s=30)  # no timed flush during the test
    served_log.start()
    try:
        ids = served_log.log([_served("A1", "C007", 1), _served("A1", "C040", 2)], served_at=t0)
        assert len(set(ids)) == 2 and served_log.pending == 2 and served_log.holds(ids[0])
        assert _ids(store, "A1") == set()
        served_log.flush()
        assert _ids(store, "A1") == set(ids) and served_log.pending == 0
        assert logged_recommendations(store, "A1", t0)[0].served_at == to_ns(t0)
        more = served_log.log([_served("A1", "C044", 1)], served_at=t0)
    finally:
        served_log.close()  # shutdown writes what is left
    assert _ids(store, "A1") == {*ids, *more}


def test_the_served_log_writes_on_its_interval(store: Store) -> None:
    served_log = ServedLog(store, flush_interval_s=0.02)
    served_log.start()
    try:
        ids = served_log.log([_served("A2", "C009", 1)])
        deadline = time.monotonic() + 10
        while served_log.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _ids(store, "A2") == set(ids) and served_log.written == 1
    finally:
        served_log.close()


def test_a_failed_write_keeps_the_rows_for_the_next_one(store: Store) -> None:
    failing = _FailingOnce(store)
    served_log = ServedLog(failing, flush_interval_s=30)  # type: ignore[arg-type]
    served_log.start()
    try:
        ids = served_log.log([_served("A1", "C007", 1)])
        with pytest.raises(OperationalError):
            served_log.flush()
        assert served_log.pending == 1 and served_log.write_failures == 1
        assert "database is locked" in (served_log.last_error or "")
        later = served_log.log([_served("A1", "C040", 2)])
        served_log.flush()
    finally:
        served_log.close()
    assert _ids(store, "A1") == {*ids, *later} and served_log.last_error is None


def test_without_an_interval_the_served_log_writes_in_the_call(store: Store) -> None:
    served_log = ServedLog(store, flush_interval_s=0)
    served_log.start()
    ids = served_log.log([_served("A1", "C007", 1)])
    assert _ids(store, "A1") == set(ids) and served_log.pending == 0
    served_log.close()
    with pytest.raises(ValueError, match="flush_interval_s = -1"):
        ServedLog(store, flush_interval_s=-1)


def test_the_migrations_create_exactly_the_tables_the_code_maps(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_schemas": False})
        assert compare_metadata(context, Base.metadata) == []


def test_migration_0003_drops_a_table_and_its_downgrade_brings_it_back(store: Store) -> None:
    def differences() -> list[Any]:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_schemas": False})
            return list(compare_metadata(context, Base.metadata))

    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    assert store.revision() == "0002"
    # modified columns come as lists of changes: 0006 makes columns nullable
    nullable = [d for d in differences() if isinstance(d, list)]
    assert sorted((c[0][0], c[0][2], c[0][3]) for c in nullable) == [
        ("modify_nullable", "accounts", "created_at"),
        ("modify_nullable", "content", "content_type"),
        ("modify_nullable", "content", "phases"),
        ("modify_nullable", "content", "roles"),
        ("modify_nullable", "content", "topic"),
    ]
    diffs = [d for d in differences() if not isinstance(d, list)]
    # the one table no code maps any more, besides what later migrations add (0004 a
    # column, 0005 a table, 0006 nullable columns, 0007 attribute and position columns, 0009 the
    # kind of a served action and an exposure's policy, 0010 names, 0011 the feature states'
    # table, 0012 the online posterior's table and a decision's segment and reward, 0013
    # the posterior's expected successes, 0014 a decision's servable actions)
    later = [
        d
        for d in diffs
        if d[0] == "add_table"
        and d[1].name in ("account_scores", "feature_states", "action_posteriors")
    ]
    [(change, table)] = [d for d in diffs if d[0] != "add_column" and d not in later]
    assert sorted((d[2], d[3].name) for d in diffs if d[0] == "add_column") == [
        ("accounts", "attributes"),
        ("accounts", "name"),
        ("api_keys", "rep_id"),
        ("contacts", "name"),
        ("exposures", "attributes"),
        ("exposures", "policy"),
        ("exposures", "position"),
        ("exposures", "servable"),
        ("recommendations", "kind"),
        ("recommendations", "rewarded_at"),
        ("recommendations", "segment"),
        ("recommendations", "servable"),
        ("touchpoints", "attributes"),
    ]
    assert change == "remove_table" and table.name not in Base.metadata.tables
    assert store.migrate() == "0014"
    assert differences() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0013_restarts_the_online_posterior(
    backend: str, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    """Counts kept before the posterior counted what the model expected cannot be read as
    its evidence: they are dropped, and the decisions they counted leave their segment so
    that a later response to one counts nowhere. The decisions stay in the log."""
    with open_store(backend, tmp_path, taxonomy, revision="0012") as store:
        t0 = to_ns(pd.Timestamp("2025-03-01 12:00", tz="UTC"))
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO action_posteriors (model_version, segment, content_id, "
                    "trials, successes, updated_at) VALUES ('4', 'selection', 'C007', 9, 2, :t)"
                ),
                {"t": t0},
            )
            conn.execute(
                insert(Recommendation),
                [{"id": "r0", "request_id": "q", "account_id": "A1", "contact_id": None,
                  "content_id": "C007", "rank": 1, "expected_value": 0.1, "propensity": 0.5,
                  "policy": "p/thompson", "model_versions": {"nba-next-content": "4"},
                  "served_at": t0, "kind": "decision", "segment": "selection"}],
            )  # fmt: skip
        assert store.migrate() == "0014"
        assert store.posterior_counts("4") == {}
        [row] = logged_recommendations(store, "A1")
        assert (row.id, row.segment) == ("r0", None)
        store.record_feedback("r0", "converted", at=pd.Timestamp("2025-03-02", tz="UTC"))
        assert store.posterior_counts("4") == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0002_fills_the_decision_state_from_the_log(
    backend: str, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    with open_store(backend, tmp_path, taxonomy, revision="0001") as store:
        t0 = pd.Timestamp("2025-03-01 12:00", tz="UTC")
        rows = [
            {"id": f"r{i}", "request_id": "q", "account_id": "A1", "contact_id": contact,
             "content_id": content, "rank": 1, "expected_value": 0.1, "propensity": 1.0,
             "policy": "p", "model_versions": {}, "served_at": to_ns(t0 + pd.Timedelta(hours=i))}
            for i, (contact, content) in enumerate(
                [("P1", "C007"), ("P1", "C007"), (None, "C040"), ("P2", "C040")]
            )
        ]  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(insert(Recommendation), rows)
            conn.execute(
                insert(Feedback),
                [
                    {
                        "recommendation_id": "r2",
                        "outcome": "dismissed",
                        "at": to_ns(t0),
                        "note": None,
                    },
                    {"recommendation_id": "r0", "outcome": "shown", "at": to_ns(t0), "note": None},
                ],
            )
        assert store.migrate() == "0014"
        with store.engine.connect() as conn:
            served = conn.execute(select(ServedAction)).all()
            dismissed = conn.execute(select(DismissedItem)).all()
        assert sorted((r.contact_id, r.content_id, r.last_served_at) for r in served) == [
            ("", "C040", to_ns(t0 + pd.Timedelta(hours=2))),
            ("P1", "C007", to_ns(t0 + pd.Timedelta(hours=1))),
            ("P2", "C040", to_ns(t0 + pd.Timedelta(hours=3))),
        ]
        assert [(r.account_id, r.content_id, r.last_dismissed_at) for r in dismissed] == [
            ("A1", "C040", to_ns(t0))
        ]
