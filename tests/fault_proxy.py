"""A loopback TCP proxy that breaks connections on demand, and a canned-answer HTTP server.

``FaultProxy`` sits between an SDK and a real server on 127.0.0.1. Armed with
a mode, the next ``count`` new connections fail that way:

* ``reset``    — the connection is accepted, then reset (RST) at once;
* ``close``    — the connection is accepted, then closed cleanly (FIN) at once;
* ``hang``     — the request is read and never answered (the client times out);
* ``truncate`` — the request goes through, the answer is cut after ``cut_after`` bytes.

Arming also resets the connections currently passing through, so a pooled
connection cannot slip past the fault (the first request on it then fails
without counting as one of the ``count``; tests use fresh clients to count exactly).

``CannedServer`` answers every request with one fixed HTTP status and body, to
drive each error mapping with the real SDK parsing a real response.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

FaultMode = Literal["reset", "close", "hang", "truncate"]
BUFFER = 64 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, which sends an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


class FaultProxy:
    """Forward 127.0.0.1:<port> to ``target``, failing connections as armed."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._mode: FaultMode | None = None
        self._remaining = 0
        self._cut_after = 0
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self.faulted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, mode: FaultMode, count: int, *, cut_after: int = 0) -> None:
        """Fail the next ``count`` connections with ``mode``."""
        with self._lock:
            self._mode, self._remaining, self._cut_after = mode, count, cut_after
            self.faulted = 0
            pooled = list(self._open)
            self._open.clear()
        for sock in pooled:
            _reset(sock)

    def disarm(self) -> None:
        """Let every connection through again."""
        with self._lock:
            self._mode, self._remaining = None, 0

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _reset(sock)
            self._open.clear()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self._mode if self._remaining > 0 else None
                if mode is not None:
                    self._remaining -= 1
                    self.faulted += 1
                cut_after = self._cut_after
            threading.Thread(
                target=self._serve, args=(client, mode, cut_after), daemon=True
            ).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _serve(self, client: socket.socket, mode: FaultMode | None, cut_after: int) -> None:
        if mode == "reset":
            _reset(client)
            return
        if mode == "close":
            client.close()
            return
        if mode == "hang":
            self._track(client)  # read and never answer; closed by stop() or the client
            with contextlib.suppress(OSError):
                while client.recv(BUFFER):
                    pass
            return
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            _reset(client)
            return
        self._track(client, upstream)
        limit = cut_after if mode == "truncate" else None
        threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
        self._pipe(upstream, client, limit)

    def _pipe(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        """Copy bytes until either side closes (or ``limit`` bytes went through)."""
        sent = 0
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class CannedServer:
    """An HTTP server on 127.0.0.1 answering every request with one set response."""

    def __init__(self) -> None:
        self.status = 500
        self.body = b""
        self.content_type = "application/xml"
        canned = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(canned.body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        """Answer every following request with ``status`` and ``body``."""
        self.status, self.body, self.content_type = status, body, content_type

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def fault_proxy(url: str) -> Iterator[FaultProxy]:
    """A proxy in front of the ``http://host:port`` server, stopped afterwards."""
    host, port = url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    try:
        yield proxy
    finally:
        proxy.stop()


@contextlib.contextmanager
def canned_server() -> Iterator[CannedServer]:
    """A :class:`CannedServer`, stopped afterwards."""
    server = CannedServer()
    try:
        yield server
    finally:
        server.stop()
