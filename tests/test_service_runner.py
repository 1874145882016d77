"""The NecroCode Agent Runner's protocol, spoken by a client configured like the runner's.

The runner's client is a ``requests`` session retrying 3 times with backoff on
429 and 5xx, POST included; it uploads a multipart form (``file``, ``type``,
``metadata`` as a JSON string), reads ``response.json()["uri"]``, fetches
``<uri>`` with ``Accept: */*`` and ``/artifacts/metadata?uri=<uri>``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .conftest import ServiceFactory
from .service_server import ThreadServer


def runner_session() -> requests.Session:
    """A session set up the way NecroCode's Agent Runner sets up its own."""
    session = requests.Session()
    retry = Retry(
        total=3,
        backoff_factor=0.1,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=None,  # every method, POST included
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.fixture
def runner() -> Iterator[requests.Session]:
    with runner_session() as session:
        yield session


def upload(
    session: requests.Session,
    base: str,
    kind: str,
    content: bytes,
    metadata: dict[str, Any],
    **params: str,
) -> requests.Response:
    """The runner's upload call."""
    return session.post(
        f"{base}/artifacts",
        files={"file": (f"{kind}.out", content)},
        data={"type": kind, "metadata": json.dumps(metadata)},
        params=params,
        timeout=30,
    )


DIFF = b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-old\n+new\n"
LOG = b"".join(b"line %d of the agent's log\n" % i for i in range(5000))
TEST = json.dumps({"passed": 41, "failed": 1, "tests": [{"name": "t", "ok": True}]}).encode()
CASES = [
    ("diff", DIFF, {"title": "Add login", "branch": "feature/login"}),
    ("log", LOG, {"title": "Task 1.1 log"}),
    ("test", TEST, {"success": False, "test_count": 42}),
]


@pytest.mark.parametrize(("kind", "content", "extra"), CASES, ids=[c[0] for c in CASES])
def test_upload_fetch_and_metadata_round_trip(
    service: ThreadServer,
    runner: requests.Session,
    kind: str,
    content: bytes,
    extra: dict[str, Any],
) -> None:
    metadata = {"spec_name": "chat-app", "task_id": "1.1", **extra}
    response = upload(runner, service.url, kind, content, metadata)
    assert response.status_code == 201, response.text
    uri = response.json()["uri"]
    assert uri == f"{service.url}/artifacts/chat-app/1.1/{kind}?version=1"

    fetched = runner.get(uri, headers={"Accept": "*/*"}, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["Vary"] == "Accept"

    described = runner.get(f"{service.url}/artifacts/metadata", params={"uri": uri}, timeout=30)
    assert described.status_code == 200
    meta = described.json()
    assert meta["spec_name"] == "chat-app"
    assert meta["task_id"] == "1.1"
    assert meta["artifact_type"] == kind
    assert meta["original_size"] == len(content)
    assert meta["version"] == 1
    assert meta["checksum"].startswith("sha256:")
    assert meta["metadata"] == extra  # the extra keys, as given
    assert meta["uri"] == uri
    stored = service.store.search(spec_name="chat-app", task_id="1.1", artifact_type=kind)
    assert [m.metadata for m in stored] == [extra]


def test_health(service: ThreadServer, runner: requests.Session) -> None:
    response = runner.get(f"{service.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["backend"] == "filesystem"


def test_retried_post_is_idempotent(service: ThreadServer, runner: requests.Session) -> None:
    metadata = {"spec_name": "chat-app", "task_id": "2.1", "title": "retry"}
    first = upload(runner, service.url, "diff", DIFF, metadata)
    again = upload(runner, service.url, "diff", DIFF, metadata)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["uri"] == first.json()["uri"]
    uri = service.store.search(task_id="2.1")[0].uri
    assert [m.version for m in service.store.get_all_versions(uri)] == [1]
    forced = upload(runner, service.url, "diff", DIFF, metadata, force="true")
    assert forced.status_code == 201
    assert forced.json()["uri"].endswith("?version=2")
    changed = upload(runner, service.url, "diff", DIFF + b"+more\n", metadata)
    assert changed.json()["uri"].endswith("?version=3")
    # The older link keeps showing what was reviewed.
    assert runner.get(first.json()["uri"], timeout=10).content == DIFF


class _FlakyProxy:
    """A TCP proxy that answers the first request with 503, then forwards to the service."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.refused = 0

    def serve(self, connections: int) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            for end in (src, dst):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

        def run() -> None:
            for _ in range(connections):
                client, _addr = self.listener.accept()
                if self.refused == 0:
                    self.refused += 1
                    _read_request(client)
                    client.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n"
                    )
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        threading.Thread(target=run, daemon=True).start()


def _read_request(client: socket.socket) -> None:
    """Read one whole request (head and Content-Length body) from ``client``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += client.recv(65536)


def test_the_runners_retry_after_a_503_stores_one_version(
    service_factory: ServiceFactory, runner: requests.Session
) -> None:
    server = service_factory(public_url="http://artifacts.example.test:8003")
    proxy = _FlakyProxy(server.url)
    proxy.serve(connections=3)
    metadata = {"spec_name": "retry-spec", "task_id": "1", "title": "x"}
    response = upload(runner, proxy.url, "log", LOG, metadata)
    assert proxy.refused == 1  # the first attempt met the 503; the retry went through
    assert response.status_code == 201
    assert (
        response.json()["uri"]
        == "http://artifacts.example.test:8003/artifacts/retry-spec/1/log?version=1"
    )
    # The link is the public URL; the metadata lookup accepts it.
    described = runner.get(
        f"{server.url}/artifacts/metadata", params={"uri": response.json()["uri"]}, timeout=10
    )
    assert described.json()["version"] == 1


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"type": "binary", "metadata": '{"spec_name": "s", "task_id": "t"}'}, "invalid_name"),
        ({"type": "diff", "metadata": "not json"}, "invalid_input"),
        ({"type": "diff", "metadata": "[1, 2]"}, "invalid_input"),
        ({"type": "diff", "metadata": '{"spec_name": "s"}'}, "invalid_input"),
        ({"type": "diff", "metadata": '{"spec_name": "../etc", "task_id": "t"}'}, "invalid_name"),
        ({"type": "diff", "metadata": '{"spec_name": "s", "task_id": "a/b"}'}, "invalid_name"),
        ({"metadata": '{"spec_name": "s", "task_id": "t"}'}, "invalid_input"),
        ({"type": "diff"}, "invalid_input"),
    ],
)
def test_bad_uploads_are_4xx_json_and_store_nothing(
    service: ThreadServer, runner: requests.Session, form: dict[str, str], code: str
) -> None:
    response = runner.post(
        f"{service.url}/artifacts", files={"file": ("x", b"bytes")}, data=form, timeout=10
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert service.store.search() == []
    assert list(service.store.backend.list("")) == []


def test_form_without_file_or_not_multipart(
    service: ThreadServer, runner: requests.Session
) -> None:
    no_file = runner.post(
        f"{service.url}/artifacts",
        files={"type": (None, "diff"), "metadata": (None, '{"spec_name": "s", "task_id": "t"}')},
        timeout=10,
    )
    assert no_file.status_code == 422
    assert "file" in no_file.json()["error"]["message"]
    not_form = runner.post(f"{service.url}/artifacts", data=b"raw", timeout=10)
    assert not_form.status_code == 400
    assert not_form.json()["error"]["code"] == "bad_request"


def test_file_before_fields_is_accepted(service: ThreadServer, runner: requests.Session) -> None:
    """A client that sends the file part first (not the runner) still works."""
    boundary = "b0undary"
    meta = json.dumps({"spec_name": "order", "task_id": "1"})
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
        ).encode()
        + LOG
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nlog'
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{meta}'
            f"\r\n--{boundary}--\r\n"
        ).encode()
    )
    response = runner.post(
        f"{service.url}/artifacts",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert runner.get(response.json()["uri"], timeout=10).content == LOG


def test_foreign_uris_are_refused(service: ThreadServer, runner: requests.Session) -> None:
    for uri in (
        "http://elsewhere.example/artifacts/s/t/diff",
        "file:///etc/passwd",
        f"{service.url}/artifacts/s/t/binary",
        f"{service.url}/artifacts/../../etc/diff",
        f"{service.url}/artifacts/s/t/diff?version=0",
        f"{service.url}/v1/usage",
    ):
        response = runner.get(f"{service.url}/artifacts/metadata", params={"uri": uri}, timeout=10)
        assert response.status_code == 422, (uri, response.text)
        assert response.json()["error"]["code"] in ("invalid_uri", "invalid_name"), uri
    missing = runner.get(
        f"{service.url}/artifacts/metadata",
        params={"uri": f"{service.url}/artifacts/s/t/diff"},
        timeout=10,
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": missing.json()["error"]["message"]}
    }
