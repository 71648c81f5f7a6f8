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

ASGI middleware cannot do either: it runs only once the head is parsed and its task is
scheduled.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import cache
from typing import Any

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


@cache
def header_timeout_s() -> float:
    """``NBA_HEADER_TIMEOUT_S`` of this worker's environment (``nba serve`` validated it)."""
    return Settings.from_env(os.environ).header_timeout_s


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
        super().on_headers_complete()

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
