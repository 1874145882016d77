"""Real artifact-service servers for tests: uvicorn on 127.0.0.1, a free port, real sockets.

- :class:`ThreadServer` runs the app over a given store in a thread of the
  test process (fast; the test can inspect the store directly).
- :class:`ServeProcess` runs ``necrocode-artifacts serve`` as a child process
  (signals, peak RSS of the server alone, the command line's own checks).

Both are context managers and stop their server on exit. The fixtures in
``conftest.py`` (``service``, ``service_factory``) wrap :class:`ThreadServer`.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import uvicorn

from necrocode.artifact_store import ArtifactStore
from necrocode.artifact_store.service.app import create_app
from necrocode.artifact_store.service.auth import TokenStore
from necrocode.artifact_store.service.server import bind, uvicorn_options
from necrocode.artifact_store.service.settings import ServiceSettings

STARTUP_TIMEOUT = 30.0
_SERVING = re.compile(r"serving (?P<url>http://\S+)")


class ThreadServer:
    """The service over ``store`` in a background thread; ``url`` is its base URL."""

    def __init__(self, store: ArtifactStore, settings: ServiceSettings | None = None) -> None:
        self.store = store
        self.settings = settings or ServiceSettings(host="127.0.0.1", port=0)
        self._sock = bind(self.settings.host, self.settings.port)
        port = self._sock.getsockname()[1]
        #: Where the tests connect (the app's returned URIs use ``--public-url`` if set).
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = TokenStore(self.settings.tokens_file)
        self.app = create_app(
            store, self.settings, tokens=self.tokens, base_url=self.settings.base_url(port)
        )
        config = uvicorn.Config(self.app, **uvicorn_options(self.settings, shutdown_timeout=5))
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def artifact_url(self, spec: str, task: str, kind: str) -> str:
        """``{url}/v1/artifacts/{spec}/{task}/{kind}``."""
        return f"{self.url}/v1/artifacts/{spec}/{task}/{kind}"


def serve_command(*args: str) -> list[str]:
    """The command line that runs ``necrocode-artifacts serve`` with ``args``."""
    return [sys.executable, "-m", "necrocode.artifact_store", "serve", *args]


class ServeProcess:
    """``necrocode-artifacts serve`` as a child process on a free loopback port.

    ``url`` is read from the ``serving <url>`` line the command prints once bound.
    """

    def __init__(
        self, base_path: Path, args: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> None:
        from .conftest import subprocess_env

        self.env = subprocess_env() | (env or {})
        self.env["NECROCODE_ARTIFACT_STORE_BASE_PATH"] = str(base_path)
        self.args = ["--port", "0", *args]
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self.stderr_lines: list[str] = []
        self._reader: threading.Thread | None = None

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            serve_command(*self.args),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        found = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self.stderr_lines.append(line)
                match = _SERVING.search(line)
                if match and not self.url:
                    self.url = match["url"]
                    found.set()
            found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        found.wait(STARTUP_TIMEOUT)
        if not self.url:
            self.stop()
            raise RuntimeError("serve did not start:\n" + "".join(self.stderr_lines))
        wait_until_listening(self.url)
        return self

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the server to exit; its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self.process is not None and self.process.stderr is not None:
            with contextlib.suppress(Exception):
                self.process.stderr.close()


def wait_until_listening(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Return once ``url``'s host accepts TCP connections."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of process ``pid`` so far (``VmHWM``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def stream_of(size: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """``size`` bytes of a repeating pattern, generated chunk by chunk."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        yield piece
