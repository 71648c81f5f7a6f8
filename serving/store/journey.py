"""Journey data in the store: ingesting events (with the accounts and contacts they create
or describe), and reading accounts, the content catalog and content popularity in the
canonical form of ``features.schema``.

An ingest that gives an account new rows bumps its ``data_version``, which keys the scorer's
feature cache (see ``serving.store.tables.Account``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, bindparam, func, select, update

from features.attributes import NO_ATTRIBUTES, AttributeDeclaration
from features.errors import InvalidInputError
from features.schema import RESPONSE_EVENT_TYPES, JourneyData
from features.taxonomy import Taxonomy
from features.timestamps import to_ns
from serving.store.engine import IN_CHUNK
from serving.store.feature_states import (
    BUILD_CHUNK_ACCOUNTS,
    StateRead,
    built_states,
    current_states,
    save_states,
    updated_states,
    version_and_state,
)
from serving.store.frames import canonical_frame, schema_select
from serving.store.ingest import (
    ACCOUNT_FIELDS,
    MAX_BATCH_EVENTS,
    IngestResult,
    ValidatedEvents,
    validate_events,
)
from serving.store.posteriors import PosteriorLog
from serving.store.served_exposures import (
    account_decision_rows,
    decision_exposure_rows,
    item_channels,
)
from serving.store.tables import BY_NAME, Account, Contact, Content, Touchpoint
from serving.store.values import id_problem


class BatchTooLargeError(InvalidInputError):
    """More events in one batch than ``MAX_BATCH_EVENTS``."""

    http_status_override = 413


# The response touchpoints per content item, counted in the database.
_POPULARITY = (
    select(Touchpoint.content_id, func.count())
    .where(
        Touchpoint.content_id.is_not(None),
        Touchpoint.event_type.in_(list(RESPONSE_EVENT_TYPES)),
    )
    .group_by(Touchpoint.content_id)
)


class JourneyStore(PosteriorLog):
    """Journey data at ``url``; ``taxonomy`` decides which channels, event types, roles, ...
    ingested events may name, and the categories of the frames the reads return."""

    def __init__(
        self,
        url: str,
        taxonomy: Taxonomy,
        *,
        schema: str | None = None,
        attributes: AttributeDeclaration = NO_ATTRIBUTES,
    ) -> None:
        super().__init__(url, schema=schema)
        self.taxonomy = taxonomy
        # The custom attributes ingested events and accounts may carry.
        self.attributes = attributes
        self._content_ids: frozenset[str] = frozenset()
        self._content_frame: pd.DataFrame | None = None
        self._channels: dict[str, str] = {}
        # The decisions of an account that has none (read only, shared by the requests).
        self._no_decisions: pd.DataFrame | None = None

    # -- content catalog -------------------------------------------------------------------

    def _refresh_content(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(schema_select("content").order_by(Content.content_id)).all()
        self._content_frame = canonical_frame("content", rows, self.taxonomy)
        self._content_ids = frozenset(self._content_frame["content_id"])
        # read by every cold request (its decisions as exposures): built once per catalog
        self._channels = item_channels(self._content_frame)

    def content(self) -> pd.DataFrame:
        """The catalog as a canonical ``content`` table."""
        if self._content_frame is None:
            self._refresh_content()
        assert self._content_frame is not None
        return self._content_frame

    def _item_channels(self) -> dict[str, str]:
        """content_id -> the item's channel (``item_channels`` of :meth:`content`)."""
        self.content()
        return self._channels

    def content_popularity(self) -> dict[str, float]:
        """content_id -> number of response touchpoints on it (what cold-start answers rank
        by; ``serving.scoring.content_popularity`` on a frame, as one aggregate query here so
        no worker reads every touchpoint)."""
        with self.engine.connect() as conn:
            return {str(c): float(n) for c, n in conn.execute(_POPULARITY).all()}

    # -- ingestion -------------------------------------------------------------------------

    def ingest_events(
        self, records: Sequence[object], *, now: pd.Timestamp | None = None
    ) -> IngestResult:
        """Validate and store a batch of touchpoint records (see ``serving.store.ingest``).

        Idempotent by event_id: an event stored before, or earlier in the batch, is counted
        as a duplicate and stores nothing. Invalid records are rejected one by one with their
        index, field and reason; the valid ones are stored (one transaction). Unknown
        accounts and contacts are created from the record (and its optional ``account`` /
        ``contact`` objects); attributes given for known ones update them. Accounts that get
        new events or attributes have their data version bumped. Raises
        :class:`BatchTooLargeError` above ``MAX_BATCH_EVENTS`` records.
        """
        if len(records) > MAX_BATCH_EVENTS:
            raise BatchTooLargeError(
                f"{len(records):,} events in one batch; expected at most {MAX_BATCH_EVENTS:,}"
            )
        now_ns = to_ns(now if now is not None else pd.Timestamp.now(tz="UTC"))
        dicts = [r for r in records if isinstance(r, dict)]
        content_ids = {r["content_id"] for r in dicts if isinstance(r.get("content_id"), str)}
        if not self._content_ids or not content_ids <= self._content_ids:
            self._refresh_content()  # the catalog may have grown in another process
        # Only ids that can be valid are looked up: the query must not fail on an id the
        # database cannot take (NUL, lone surrogates); validation rejects those records.
        contact_ids = sorted(
            {
                r["contact_id"]
                for r in dicts
                if isinstance(r.get("contact_id"), str) and id_problem(r["contact_id"]) is None
            }
        )
        with self._write() as conn:
            known_contacts = self._contact_accounts(conn, contact_ids)
            valid = validate_events(
                records,
                self.taxonomy,
                content_ids=self._content_ids,
                contact_accounts=known_contacts,
                now_ns=now_ns,
                attributes=self.attributes,
            )
            inserted = self._store_valid(conn, valid, known_contacts, now_ns)
        accepted = len(inserted)
        return IngestResult(
            accepted=accepted,
            duplicates=valid.duplicates + len(valid.touchpoints) - accepted,
            rejected=sorted(valid.errors, key=lambda e: e.index),
            account_ids={account_id for _, account_id in inserted},
        )

    def _store_valid(
        self,
        conn: Connection,
        valid: ValidatedEvents,
        known_contacts: Mapping[str, str],
        now_ns: int,
    ) -> Sequence[Any]:
        """Store a batch's valid rows and update the feature states of the accounts they
        change (those whose state was current); returns the (event_id, account_id) of the
        touchpoints that were new. New responses reward the decisions they answer (online
        posterior)."""
        inserted: Sequence[Any] = []
        updated_accounts: set[str] = set()
        before: dict[str, bytes] = {}
        if valid.touchpoints:
            before = current_states(conn, set(valid.accounts))
            updated_accounts = self._upsert_accounts(conn, valid.accounts)
            self._upsert_contacts(conn, valid.contacts, known_contacts)
            rows = sorted(valid.touchpoints, key=lambda r: r["event_id"])  # lock order
            statement = (
                self._insert(BY_NAME["touchpoints"])
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(Touchpoint.event_id, Touchpoint.account_id)
            )
            inserted = conn.execute(statement, rows).all()
            new_ids = {event_id for event_id, _ in inserted}
            self._reward_touchpoints(conn, [r for r in rows if r["event_id"] in new_ids], now_ns)
        changed = {account_id for _, account_id in inserted}
        self._bump_accounts(conn, changed | updated_accounts)
        new_ids = {event_id for event_id, _ in inserted}
        touched = {a: before[a] for a in changed | updated_accounts if a in before}
        save_states(
            conn,
            updated_states(
                conn,
                touched,
                [r for r in valid.touchpoints if r["event_id"] in new_ids],
                self.taxonomy,
                now_ns,
            ),
            self._insert,
        )
        return inserted

    def _contact_accounts(self, conn: Connection, contact_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(contact_ids), IN_CHUNK):
            chunk = contact_ids[start : start + IN_CHUNK]
            query = select(Contact.contact_id, Contact.account_id).where(
                Contact.contact_id.in_(chunk)
            )
            out.update({c: a for c, a in conn.execute(query).all()})
        return out

    def _upsert_accounts(
        self, conn: Connection, accounts: Mapping[str, Mapping[str, Any]]
    ) -> set[str]:
        """Create unknown accounts, update the attributes records gave for known ones;
        returns the accounts whose attributes were given."""
        attrs = [a for a in ACCOUNT_FIELDS if a != "created_at"]
        plain: list[dict[str, Any]] = []
        described: list[dict[str, Any]] = []
        for account_id in sorted(accounts):
            given = accounts[account_id]
            row = {"account_id": account_id, "created_at": given["created_at"]}
            row.update({a: given.get(a) for a in attrs})
            (described if any(a in given for a in attrs) else plain).append(row)
        table = BY_NAME["accounts"]
        if plain:
            conn.execute(
                self._insert(table).on_conflict_do_nothing(index_elements=["account_id"]), plain
            )
        if described:
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=["account_id"],
                set_={a: func.coalesce(getattr(statement.excluded, a), table.c[a]) for a in attrs},
            )
            conn.execute(statement, described)
        return {row["account_id"] for row in described}

    def _upsert_contacts(
        self,
        conn: Connection,
        contacts: Mapping[str, Mapping[str, Any]],
        known: Mapping[str, str],
    ) -> None:
        new: list[dict[str, Any]] = []
        described: list[dict[str, Any]] = []
        for contact_id in sorted(contacts):
            given = contacts[contact_id]
            row = {
                "contact_id": contact_id,
                "account_id": given["account_id"],
                "role": given.get("role"),
                "created_at": given["created_at"],
                "left_at": None,
                "name": given.get("name"),
            }
            if contact_id not in known:
                new.append(row)
            elif row["role"] is not None or row["name"] is not None:
                described.append(row)
        table = BY_NAME["contacts"]
        if new:
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=["contact_id"],
                set_={
                    c: func.coalesce(getattr(statement.excluded, c), table.c[c])
                    for c in ("role", "name")
                },
            )
            conn.execute(statement, new)
        if described:
            # what a record gives replaces the stored value; what it does not give is kept
            conn.execute(
                update(table)
                .where(table.c.contact_id == bindparam("known_contact_id"))
                .values(
                    role=func.coalesce(bindparam("new_role"), table.c.role),
                    name=func.coalesce(bindparam("new_name"), table.c.name),
                ),
                [
                    {
                        "known_contact_id": r["contact_id"],
                        "new_role": r["role"],
                        "new_name": r["name"],
                    }
                    for r in described
                ],
            )

    def _bump_accounts(self, conn: Connection, account_ids: Iterable[str]) -> None:
        """New data for these accounts: features computed from their old rows are stale."""
        ids = sorted(account_ids)
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            conn.execute(
                update(BY_NAME["accounts"])
                .where(Account.account_id.in_(chunk))
                .values(data_version=Account.data_version + 1)
            )

    # -- reading journeys ------------------------------------------------------------------

    def account_data(self, account_id: str) -> JourneyData | None:
        """One account's rows of the six tables in canonical form (``features.schema``),
        the whole content catalog included; None if the account is unknown.

        ``build_account_features(store.account_data(a), a, as_of, taxonomy)`` equals the
        batch pipeline's row for ``a`` on the same data. What the store does not know (an
        account's firmographics, an item's type) is missing, as the loader reads it.
        """
        data = self.accounts_data([account_id])
        return None if data.accounts.empty else data

    def accounts_data(self, account_ids: Sequence[str], *, decisions: bool = True) -> JourneyData:
        """The rows of the given accounts in the six tables, in canonical form, read with
        one query per table (unknown ids are simply absent); events in time order. The
        service's decisions are exposures too unless ``decisions`` is False."""
        ids = list(account_ids)
        frames: dict[str, pd.DataFrame] = {}
        channel = item_channels(self.content())
        with self.engine.connect() as conn:
            for name in ("accounts", "contacts", "touchpoints", "stages", "exposures"):
                table = BY_NAME[name]
                query = schema_select(name).where(table.c.account_id.in_(ids))
                if "ts" in table.c:
                    query = query.order_by(table.c.ts, *table.primary_key.columns)
                rows: list[Any] = list(conn.execute(query).all())
                if name == "exposures" and decisions:
                    # the service's own decisions are exposures too, as training reads them
                    known = set(frames["accounts"]["account_id"].astype(str))
                    rows += decision_exposure_rows(conn, channel, known)[0]
                    rows.sort(key=lambda r: (r[3], r[0]))  # by time, then id
                frames[name] = canonical_frame(name, rows, self.taxonomy)
        return JourneyData(
            accounts=frames["accounts"],
            contacts=frames["contacts"],
            touchpoints=frames["touchpoints"],
            content=self.content(),
            stages=frames["stages"],
            exposures=frames["exposures"],
        )

    # -- feature states --------------------------------------------------------------------

    def account_state(self, account_id: str) -> StateRead | None:
        """The account's data version, current feature state (None: none current) and
        decisions, in one read transaction; None if the account is unknown."""
        channel = self._item_channels()
        with self.engine.connect() as conn, conn.begin():
            found = version_and_state(conn, account_id)
            if found is None:
                return None
            version, state = found
            rows = account_decision_rows(conn, channel, account_id)
        if not rows:  # most accounts: no decision yet (a frame costs more than the reads)
            if self._no_decisions is None:
                self._no_decisions = canonical_frame("exposures", [], self.taxonomy)
            return StateRead(int(version), state, self._no_decisions)
        return StateRead(int(version), state, canonical_frame("exposures", rows, self.taxonomy))

    def save_feature_state(self, account_id: str, data_version: int, state: bytes) -> None:
        """Store the account's feature state built from its rows at ``data_version``."""
        row = {"account_id": account_id, "data_version": data_version, "state": state}
        with self._write() as conn:
            save_states(conn, [row], self._insert)

    def build_feature_states(
        self,
        now: pd.Timestamp,
        *,
        chunk_accounts: int = BUILD_CHUNK_ACCOUNTS,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Build and store every account's feature state from its rows (``nba load``, after
        loading), events before ``now`` - ``KEEP_DAYS`` folded; returns the states written.
        ``progress(done, total)`` is called after each chunk of accounts."""
        ids = self.account_ids()
        now_ns = to_ns(now)
        written = 0
        for start in range(0, len(ids), chunk_accounts):
            chunk = ids[start : start + chunk_accounts]
            rows = built_states(self._versions_and_rows, chunk, self.taxonomy, now_ns)
            with self._write() as conn:
                save_states(conn, rows, self._insert)
            written += len(rows)
            if progress is not None:
                progress(min(start + chunk_accounts, len(ids)), len(ids))
        return written

    def _versions_and_rows(self, account_ids: list[str]) -> tuple[dict[str, int], JourneyData]:
        """The accounts' data versions, then their journey rows (no decisions)."""
        with self.engine.connect() as conn:
            versions = dict(
                conn.execute(
                    select(Account.account_id, Account.data_version).where(
                        Account.account_id.in_(account_ids)
                    )
                ).all()
            )
        return {str(a): int(v) for a, v in versions.items()}, self.accounts_data(
            account_ids, decisions=False
        )

    def accounts_of_rep(self, rep_id: str) -> list[str]:
        """The ids of the accounts owned by sales rep ``rep_id``, sorted."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Account.account_id)
                .where(Account.owner_rep_id == rep_id)
                .order_by(Account.account_id)
            ).all()
        return [r[0] for r in rows]

    def account_ids(self) -> list[str]:
        """Every account id, sorted."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Account.account_id).order_by(Account.account_id)).all()
        return [r[0] for r in rows]
