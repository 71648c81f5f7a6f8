"""API keys in the store: created with their scopes (and optionally the rep they belong to),
verified in constant time, revoked by name. Only a salted SHA-256 of a key's secret is stored
(see ``serving.store.tables.ApiKeyRow`` for why not a slow password hash). A key's name is a
label for people: what it may do comes from its scopes and its rep alone."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from features.errors import ConflictError, InvalidInputError, NotFoundError
from features.timestamps import from_ns, to_ns
from serving.store.engine import Database
from serving.store.tables import BY_NAME, ApiKeyRow

API_KEY_SCOPES = (
    "events:write",
    "recommendations:read",
    "worklists:read",
    "insights:read",
    "feedback:write",
    "admin",
)
_KEY_PREFIX = "nba"


class ApiKeyError(InvalidInputError):
    """An API key that cannot be created or revoked as asked."""


class UnknownScopeError(ApiKeyError):
    """A scope that is not one of ``API_KEY_SCOPES``."""


class DuplicateApiKeyError(ApiKeyError, ConflictError):
    """An active key with this name exists already."""


class UnknownApiKeyError(ApiKeyError, NotFoundError):
    """No active key has this name."""


class InvalidRepError(ApiKeyError):
    """A rep a key cannot be bound to: an empty id, or a key that is also admin."""


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (never its secret)."""

    id: int
    name: str
    scopes: frozenset[str]
    created_at: pd.Timestamp
    revoked_at: pd.Timestamp | None
    # The rep the key belongs to, or None (see ``serving.auth`` for what it limits).
    rep_id: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether the key may use ``scope``; ``admin`` allows everything."""
        return scope in self.scopes or "admin" in self.scopes


class ApiKeyStore(Database):
    """The API keys table."""

    def create_api_key(self, name: str, scopes: Iterable[str], *, rep_id: str | None = None) -> str:
        """Create a key and return its plaintext (the only time it is available: only a
        salted SHA-256 of the secret is stored). ``rep_id`` binds the key to a rep: it then
        reads and gives feedback on that rep's accounts only. Raises
        :class:`UnknownScopeError`, :class:`InvalidRepError` and
        :class:`DuplicateApiKeyError` (an active key has this name)."""
        wanted = sorted(set(scopes))
        unknown = [s for s in wanted if s not in API_KEY_SCOPES]
        if unknown or not wanted:
            raise UnknownScopeError(
                f"api key scopes {unknown or wanted!r}: expected one or more of "
                + ", ".join(API_KEY_SCOPES)
            )
        if not name.strip():
            raise ApiKeyError("api key name is empty; expected a name such as 'crm-widget'")
        _check_rep(rep_id, wanted)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = {
            "key_id": key_id,
            "name": name,
            "salt": salt,
            "key_hash": _hash_secret(salt, secret),
            "scopes": wanted,
            "created_at": to_ns(pd.Timestamp.now(tz="UTC")),
            "revoked_at": None,
            "rep_id": rep_id,
        }
        try:
            with self._write() as conn:
                conn.execute(insert(BY_NAME["api_keys"]), row)
        except IntegrityError as exc:
            raise DuplicateApiKeyError(
                f"api key name {name!r} is in use by an active key; revoke it first or "
                "choose another name"
            ) from exc
        return f"{_KEY_PREFIX}_{key_id}_{secret}"

    def verify_api_key(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` belongs to, or None (unknown, malformed or revoked).
        The secret is compared in constant time."""
        parts = plaintext.split("_", 2) if isinstance(plaintext, str) else []
        valid_shape = len(parts) == 3 and parts[0] == _KEY_PREFIX and len(parts[1]) == 16
        row = None
        if valid_shape:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(ApiKeyRow).where(
                        ApiKeyRow.key_id == parts[1], ApiKeyRow.revoked_at.is_(None)
                    )
                ).one_or_none()
        if row is None:
            # Same work as a real check, so timing does not tell which ids exist.
            hmac.compare_digest(_hash_secret(b"\0" * 16, plaintext or ""), b"\0" * 32)
            return None
        if not hmac.compare_digest(_hash_secret(row.salt, parts[2]), row.key_hash):
            return None
        return _api_key(row)

    def revoke_api_key(self, name: str) -> None:
        """Revoke the active key called ``name``; raises :class:`UnknownApiKeyError`."""
        with self._write() as conn:
            result = conn.execute(
                update(BY_NAME["api_keys"])
                .where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=to_ns(pd.Timestamp.now(tz="UTC")))
            )
        if result.rowcount == 0:
            raise UnknownApiKeyError(f"no active api key is named {name!r}")

    def api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
        return [_api_key(r) for r in rows]


def _check_rep(rep_id: str | None, scopes: list[str]) -> None:
    """Raises :class:`InvalidRepError` for a rep id a key cannot carry."""
    if rep_id is None:
        return
    if not rep_id.strip() or rep_id != rep_id.strip():
        raise InvalidRepError(
            f"api key rep {rep_id!r}: expected a rep id such as 'R014' (no surrounding spaces)"
        )
    # admin reads every rep's data, so a rep on an admin key would promise a limit that
    # does not hold.
    if "admin" in scopes:
        raise InvalidRepError(
            f"api key rep {rep_id!r} with scope 'admin': an admin key reads every rep's "
            "accounts; give a rep's key recommendations:read, worklists:read and "
            "feedback:write instead"
        )


def _hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes),
        created_at=from_ns(row.created_at),
        revoked_at=None if row.revoked_at is None else from_ns(row.revoked_at),
        rep_id=row.rep_id,
    )
