"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn bounds the size of a request head and closes idle keep-alive
connections, but a client may send a head one byte at a time for ever
(slowloris) and hold a connection. Here every request head must be complete
within ``head_timeout`` seconds of the connection opening (or of the previous
response ending); otherwise the connection is closed. Body reads have their
own deadline in :func:`~.transfer.body_chunks`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadTimeoutProtocol", "protocol_with_head_timeout"]


class HeadTimeoutProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head is late."""

    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        # IDLE: no complete request head has arrived in this cycle.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def protocol_with_head_timeout(seconds: float) -> type[HeadTimeoutProtocol]:
    """A protocol class whose heads must arrive within ``seconds``."""
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout": seconds})
