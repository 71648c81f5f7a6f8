"""API keys with scopes on every ``/v1`` route.

A key comes in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key or an
unknown, malformed or revoked one answers 401; a valid key without the route's scope answers
403. ``admin`` allows every scope. A key bound to a rep reads (and gives feedback on) only
that rep's worklist and accounts (see :func:`bound_rep`). The store keeps only salted hashes;
:class:`KeyVerifier` remembers verdicts for ``ttl_s`` seconds (default 5) so the request
path does not hash and query for every call — a revoked key therefore stops working within
that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.store import API_KEY_SCOPES, ApiKey, Store

Scope = Literal[
    "events:write",
    "recommendations:read",
    "worklists:read",
    "insights:read",
    "feedback:write",
    "admin",
]
SCOPES: tuple[str, ...] = API_KEY_SCOPES
# Verdicts remembered at most; the cache is cleared when it grows past this (bounded memory
# even when someone sprays random keys).
MAX_CACHED_KEYS = 10_000

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <api key>`")


class KeyVerifier:
    """Verifies plaintext keys against the store, remembering each verdict (valid key or
    None) for ``ttl_s`` seconds. Thread-safe. ``clock`` returns monotonic seconds."""

    def __init__(
        self, store: Store, ttl_s: float = 5.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def verify(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` belongs to, or None."""
        # Keyed by a digest so the cache never holds secrets in the clear.
        digest = hashlib.sha256(plaintext.encode()).digest()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = self.store.verify_api_key(plaintext)
        if self.ttl_s > 0:
            with self._lock:
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
                self._cache[digest] = (now + self.ttl_s, key)
        return key

    def clear(self) -> None:
        """Forget every verdict (e.g. after revoking a key in this process)."""
        with self._lock:
            self._cache.clear()


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_scope(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A FastAPI dependency that returns the request's :class:`ApiKey` when it allows
    ``scope`` and answers 401 (no or invalid key) or 403 (wrong scope) otherwise. The
    verifier is ``request.app.state.services.keys``."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is unknown; expected one of {', '.join(SCOPES)}")

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        header_key: str | None = Depends(_header),
    ) -> ApiKey:
        plaintext = header_key or (bearer.credentials if bearer is not None else None)
        if not plaintext:
            raise _unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                f"(this route needs scope '{scope}')"
            )
        verifier: KeyVerifier = request.app.state.services.keys
        key = verifier.verify(plaintext)
        if key is None:
            raise _unauthorized("invalid API key: unknown, malformed or revoked")
        if not key.allows(scope):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=(
                    f"API key {key.name!r} lacks scope '{scope}' (it has: "
                    f"{', '.join(sorted(key.scopes))})"
                ),
            )
        request.state.api_key = key
        return key

    return dependency


# Who reads what is decided by a key's scopes and its rep, never by its name:
# - ``worklists:read`` reads rep worklists (the route's scope); ``recommendations:read``
#   reads accounts. A widget key handed to browsers holds neither ``worklists:read`` nor a
#   rep, so it reads no worklist.
# - a key with a rep (``nba keys create --rep R014``) reads only that rep's worklist and that
#   rep's accounts, and gives feedback only on them; a key without one is limited by its
#   scopes alone (a server-side CRM sync). ``admin`` allows everything, whatever the rep (the
#   store refuses to bind an admin key to a rep).


def bound_rep(key: ApiKey) -> str | None:
    """The rep whose accounts ``key`` is limited to: its rep, or None when it has none or is
    an admin key."""
    if "admin" in key.scopes:
        return None
    return key.rep_id


def check_worklist_access(key: ApiKey, rep_id: str) -> None:
    """403 when ``key`` is bound to a rep other than ``rep_id``. (Whether the key may read
    worklists at all is its ``worklists:read`` scope, checked by :func:`require_scope`.)"""
    rep = bound_rep(key)
    if rep is not None and rep != rep_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"API key {key.name!r} is bound to rep {rep!r}; it cannot read the "
            f"worklist of rep {rep_id!r}",
        )


def check_account_access(key: ApiKey, account_id: str, owner_rep_id: str | None) -> None:
    """403 when ``key`` is bound to a rep (and not admin) and the account, owned by
    ``owner_rep_id``, is not theirs. Accounts the store does not know have no owner to
    protect and are not checked."""
    rep = bound_rep(key)
    if rep is None or owner_rep_id == rep:
        return
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail=f"API key {key.name!r} is bound to rep {rep!r}; account {account_id!r} "
        "belongs to another rep",
    )
