"""The HTTP connection: uvicorn's h11 protocol with a deadline for each request (issue 19).

uvicorn closes a keep-alive connection that stays silent, but a client that sends its request a byte at a time
(slowloris) resets that timer with every byte and keeps the connection, and its file descriptor, for as long as it
likes. Here each request must arrive whole, head and body, within ``request_timeout`` seconds of the moment the
connection could send it (when it opened, or when the previous response was sent); a connection still sending by
then is closed. A request received in time is answered however long the search takes.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol; a request not received whole within ``request_timeout`` seconds closes its
    connection. Use :func:`deadline_protocol` to get one with a timeout."""

    request_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._request_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._request_deadline = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _expired(self) -> None:
        self._request_deadline = None
        # IDLE: no whole request head yet; SEND_BODY: the body still arriving. Anything later is being answered.
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


def deadline_protocol(request_timeout: float) -> type[DeadlineProtocol]:
    """The protocol class uvicorn takes as ``http=``, with ``request_timeout`` seconds per request."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"request_timeout": request_timeout})
