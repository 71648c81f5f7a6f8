"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline for a request's head, and the
moment each request was received.

``nba serve`` runs uvicorn with ``http="serving.http_protocol:NbaHttpProtocol"``:

- **Header deadline.** uvicorn times out idle keep-alive connections only, and every byte
  received resets that timer, so a client that opens a connection and sends nothing, or
  trickles its headers a byte at a time ("slowloris"), holds a connection slot for ever.
  Here a request's head (request line and headers) must arrive within
  ``NBA_HEADER_TIMEOUT_S`` of the connection opening or of the request's first byte;
  otherwise the connection answers 408 and is closed. The body is not covered: the app reads
  it, under the body-size limit.
- **Receive time.** Each request's scope carries, under ``extensions["nba"]["received_at"]``,
  the loop's clock when its head was complete, and under ``extensions["nba"]["requests"]``
  the worker's set of request tasks (uvicorn's, one per request received and not finished). The
  load shedder (``serving.app``) compares the receive time with the time the request reaches
  the app: on a busy worker that wait is the queue a request sat in before any of its work
  started, and the set's size tells a standing queue from one late request.

- **Shedding at the door.** A ``/v1`` request that arrives while the worker already holds
  ``NBA_MAX_INFLIGHT`` requests received and not answered is answered 503 with
  ``Retry-After`` by a tiny ASGI app of its own instead of the service (as uvicorn's
  ``limit_concurrency`` does, but for the API only: health, metrics and the pages always
  reach the app). Under overload the queue forms here, before the app: a request shed by the
  app's middleware has already waited behind the others and gone through the middleware
  stack, which costs the worker the time it lacks; shed here, it costs a few tens of
  microseconds, so the worker keeps reading its sockets and answering the requests it took.
  Each shed request calls the functions in :data:`SHED_LISTENERS` (the app counts them in
  ``nba_http_requests_shed``).

ASGI middleware cannot do any of this: it runs only once the head is parsed and its task is
scheduled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import httptools
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.settings import Settings

log = logging.getLogger(__name__)

# A scope's ``extensions`` entry set here, and its keys.
EXTENSION = "nba"
RECEIVED_AT = "received_at"
REQUESTS = "requests"

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 26\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"request headers too slow\r\n"
)


# Called once per request shed at the door (the app registers its metric here).
SHED_LISTENERS: list[Callable[[], None]] = []
SHED_RETRY_AFTER_S = 1
_API_PREFIX = b"/v1/"


@cache
def _settings() -> Settings:
    """This worker's settings from its environment (``nba serve`` validated them)."""
    return Settings.from_env(os.environ)


def header_timeout_s() -> float:
    """``NBA_HEADER_TIMEOUT_S`` of this worker's environment."""
    return _settings().header_timeout_s


@cache
def _shed_body() -> bytes:
    limit = _settings().max_inflight
    detail = (
        f"this worker is at its limit (NBA_MAX_INFLIGHT {limit} requests received and not "
        f"answered); try again in {SHED_RETRY_AFTER_S} s"
    )
    return json.dumps({"detail": detail}).encode()


async def shed(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The answer of a request shed at the door: 503 with ``Retry-After``."""
    del scope, receive
    for listener in SHED_LISTENERS:
        listener()
    body = _shed_body()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class NbaHttpProtocol(HttpToolsProtocol):
    """See the module docstring. One instance per connection, on the worker's loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # a keep-alive connection's next request: its head must arrive in time too
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        self.scope["extensions"] = {
            EXTENSION: {RECEIVED_AT: self.loop.time(), REQUESTS: self.tasks}
        }
        if len(self.tasks) < _settings().max_inflight or not self._is_api():
            super().on_headers_complete()
            return
        # uvicorn runs the request with self.app: this one request gets the shed answer
        service = self.app
        self.app = shed
        try:
            super().on_headers_complete()
        finally:
            self.app = service

    def _is_api(self) -> bool:
        try:
            return bool(httptools.parse_url(self.url).path.startswith(_API_PREFIX))
        except httptools.HttpParserInvalidURLError:
            return False  # the app answers what it makes of it

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                header_timeout_s(), self._header_deadline_passed
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        log.info(
            "closed a connection from %s: no complete request head within %s s",
            self.client,
            header_timeout_s(),
        )
        self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()
