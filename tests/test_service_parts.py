"""The service's small pieces: negotiation, ranges, ETags, URLs, settings, the socket."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from necrocode.artifact_store import ArtifactType, InvalidURIError
from necrocode.artifact_store.naming import ArtifactKey
from necrocode.artifact_store.service.errors import ApiError
from necrocode.artifact_store.service.links import artifact_url, key_from_url
from necrocode.artifact_store.service.responses import wants_html
from necrocode.artifact_store.service.server import bind
from necrocode.artifact_store.service.settings import ServiceSettings
from necrocode.artifact_store.service.transfer import parse_range

from .conftest import ServiceFactory, subprocess_env
from .service_server import ServeProcess


def _request(accept: str | None, query: str = "") -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "headers": headers, "query_string": query.encode()})


@pytest.mark.parametrize(
    ("accept", "query", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", True),
        ("text/html", "", True),
        ("*/*", "", False),
        (None, "", False),
        ("application/json", "", False),
        ("text/html;q=0.5, */*", "", False),
        ("text/html;q=0", "", False),
        ("text/html", "raw=1", False),
    ],
)
def test_wants_html(accept: str | None, query: str, html: bool) -> None:
    assert wants_html(_request(accept, query)) is html


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    first = parse_range("bytes=0-9", 100)
    assert first is not None and (first.first, first.last, first.length) == (0, 9, 10)
    assert first.content_range() == "bytes 0-9/100"
    clipped = parse_range("bytes=90-1000", 100)
    assert clipped is not None and (clipped.first, clipped.last) == (90, 99)
    suffix = parse_range("bytes=-30", 100)
    assert suffix is not None and (suffix.first, suffix.last) == (70, 99)
    whole = parse_range("bytes=-300", 100)
    assert whole is not None and (whole.first, whole.last) == (0, 99)
    for ignored in ("bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=-"):
        assert parse_range(ignored, 100) is None, ignored
    for unsatisfiable in ("bytes=100-", "bytes=-0"):
        with pytest.raises(ApiError) as caught:
            parse_range(unsatisfiable, 100)
        assert caught.value.status == 416
        assert caught.value.headers["Content-Range"] == "bytes */100"


def test_urls_round_trip_and_foreign_ones_are_refused() -> None:
    key = ArtifactKey("chat", "1.1", ArtifactType.TEST_RESULT)
    base = "https://artifacts.example.com/store"
    url = artifact_url(base, key, 3)
    assert url == "https://artifacts.example.com/store/artifacts/chat/1.1/test?version=3"
    assert key_from_url(url, (base,)) == (key, 3)
    assert key_from_url(f"{base}/artifacts/chat/1.1/test-result.json", (base,)) == (key, None)
    for foreign in (
        "https://other.example.com/store/artifacts/chat/1.1/test",
        "http://artifacts.example.com/store/artifacts/chat/1.1/test",
        "https://artifacts.example.com/artifacts/chat/1.1/test",
        f"{base}/artifacts/chat/1.1/test?version=1&x=2",
        f"{base}/artifacts/chat/1.1/test#frag",
        "",
    ):
        with pytest.raises(InvalidURIError):
            key_from_url(foreign, (base,))


def test_base_url_of_the_settings() -> None:
    assert ServiceSettings().base_url() == "http://127.0.0.1:8003"
    assert ServiceSettings(host="0.0.0.0", port=9).base_url() == "http://127.0.0.1:9"
    assert ServiceSettings(host="::1").base_url(5) == "http://[::1]:5"
    public = ServiceSettings(public_url="https://a.example/x/")
    assert public.base_url(1234) == "https://a.example/x"


def test_bound_sockets_send_small_writes_at_once() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()


def test_several_workers_share_one_store(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "store", ["--workers", "2"]) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for number in range(20):  # spread over both workers by the kernel
                put = client.put(f"/v1/artifacts/w/{number}/log", content=b"n%d" % number)
                assert put.status_code == 201, put.text
            with httpx.Client(base_url=server.url, timeout=30) as other:
                listed = other.get("/v1/artifacts", params={"spec_name": "w"}).json()
            assert len(listed["items"]) == 20
            assert client.get("/v1/artifacts/w/7/log").content == b"n7"
        server.send(signal.SIGTERM)
        assert server.wait() == 0


def test_a_request_head_that_never_ends_is_cut_off(service_factory: ServiceFactory) -> None:
    server = service_factory(head_timeout=0.5)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert 0.3 < time.monotonic() - started < 5
    with socket.create_connection((host, int(port)), timeout=10) as fast:
        fast.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}"):  # head and body may come in separate segments
            answer += fast.recv(1024)
        assert answer.startswith(b"HTTP/1.1 200")
        time.sleep(0.8)  # idle after a response: the next head is late, the connection goes
        assert fast.recv(1024) == b""


def test_the_client_needs_httpx_only() -> None:
    code = (
        "import sys\n"
        "blocked = ('fastapi', 'starlette', 'uvicorn', 'python_multipart', 'prometheus_client')\n"
        "for name in blocked:\n"
        "    sys.modules[name] = None\n"
        "from necrocode.artifact_store import RemoteArtifactStore\n"
        "print(RemoteArtifactStore('http://127.0.0.1:9').root_uri)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://127.0.0.1:9/artifacts"
