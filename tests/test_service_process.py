"""``necrocode-artifacts serve`` as its own process: graceful SIGTERM, streaming memory.

The server runs as a child process so that its signals and its peak resident
memory (``VmHWM``) are its own.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig

from .service_server import ServeProcess, peak_rss_bytes, stream_of

MiB = 1024 * 1024
RSS_LIMIT = 150 * MiB


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _start_upload(url: str, path: str, declared: int, first: bytes) -> socket.socket:
    """Send a PUT's head and the first bytes of its body, and leave it hanging."""
    conn = socket.create_connection(_address(url), timeout=30)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {declared}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    conn.sendall(head.encode() + first)
    return conn


def _response_status(conn: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def _store_of(base: Path) -> ArtifactStore:
    return ArtifactStore(ArtifactStoreConfig(base_path=base))


def test_sigterm_mid_upload_exits_0_and_shows_nothing(tmp_path: Path) -> None:
    base = tmp_path / "store"
    args = ["--body-timeout", "1", "--shutdown-timeout", "15"]
    with ServeProcess(base, args) as server:
        conn = _start_upload(server.url, "/v1/artifacts/s/t/log", 64 * MiB, b"x" * MiB)
        time.sleep(0.5)  # the upload is streaming into the store now
        started = time.monotonic()
        server.send(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
        conn.close()
    with _store_of(base) as store:
        assert store.search() == []
        assert not store.exists(f"{store.root_uri}/s/t/log.txt")
        report = store.verify_all()
        assert report.ok == [] and report.healthy


def test_sigterm_lets_an_in_flight_upload_finish(tmp_path: Path) -> None:
    base = tmp_path / "store"
    body = bytes(range(256)) * 4096  # 1 MiB
    with ServeProcess(base, ["--shutdown-timeout", "20"]) as server:
        conn = _start_upload(server.url, "/v1/artifacts/s/t/log", len(body), body[:1000])
        time.sleep(0.5)
        server.send(signal.SIGTERM)
        time.sleep(0.5)  # shutting down: no new connections, the open request goes on
        conn.sendall(body[1000:])
        assert _response_status(conn) == 201
        conn.close()
        assert server.wait(timeout=30) == 0
    with _store_of(base) as store:
        (meta,) = store.search()
        assert store.download(meta.uri) == body


def _stream_through(tmp_path: Path, size: int) -> None:
    base = tmp_path / "store"
    with ServeProcess(base) as server:
        idle = peak_rss_bytes(server.pid)
        url = f"{server.url}/v1/artifacts/big/1/log"
        with httpx.Client(timeout=httpx.Timeout(600.0)) as client:
            response = client.put(url, content=stream_of(size))
            assert response.status_code == 201, response.text
            after_upload = peak_rss_bytes(server.pid)
            digest = hashlib.sha256()
            received = 0
            with client.stream("GET", url) as download:
                assert download.status_code == 200
                for chunk in download.iter_raw(MiB):
                    digest.update(chunk)
                    received += len(chunk)
        peak = peak_rss_bytes(server.pid)
    print(
        f"server peak RSS: idle {idle / MiB:.0f} MiB, after upload {after_upload / MiB:.0f} MiB,"
        f" after download {peak / MiB:.0f} MiB ({size / MiB:.0f} MiB each way)"
    )
    expected = hashlib.sha256()
    for chunk in stream_of(size):
        expected.update(chunk)
    assert received == size
    assert f"sha256:{digest.hexdigest()}" == response.json()["checksum"]
    assert digest.hexdigest() == expected.hexdigest()
    assert peak < RSS_LIMIT, (
        f"server peak RSS {peak / MiB:.0f} MiB (idle {idle / MiB:.0f}, "
        f"after upload {after_upload / MiB:.0f})"
    )


def test_streaming_up_and_down_keeps_server_memory_flat(tmp_path: Path) -> None:
    _stream_through(tmp_path, 96 * MiB)


@pytest.mark.stress
def test_streaming_one_gib_up_and_down(tmp_path: Path) -> None:
    _stream_through(tmp_path, 1024 * MiB)
