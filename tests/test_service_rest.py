"""REST v1 over a real socket: upload, conditional and range reads, listing, tags, admin."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from necrocode.artifact_store import ArtifactMetadata, ArtifactType
from necrocode.artifact_store.service.routes_v1 import list_page

from .conftest import ServiceFactory
from .service_server import ThreadServer


@pytest.fixture
def client(service: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as opened:
        yield opened


PATH = "/v1/artifacts/chat-app/1.1/log"


def test_put_then_get_head_metadata(client: httpx.Client) -> None:
    created = client.put(
        PATH,
        content=b"hello log\n",
        params={"tag": ["ci", "env:prod"], "retention_days": 3},
        headers={"Content-Type": "text/plain", "X-Artifact-Metadata": '{"agent": "r7"}'},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1
    assert body["tags"] == ["ci", "env:prod"]
    assert body["retention_days"] == 3
    assert body["metadata"] == {"agent": "r7"}
    assert body["mime_type"] == "text/plain"
    assert body["uri"].endswith("/artifacts/chat-app/1.1/log?version=1")

    got = client.get(PATH)
    assert got.content == b"hello log\n"
    assert got.headers["content-length"] == "10"
    assert got.headers["etag"] == f'"{body["checksum"].removeprefix("sha256:")}"'
    assert got.headers["content-type"].startswith("text/plain")

    head = client.head(PATH)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "10"
    assert head.headers["etag"] == got.headers["etag"]

    meta = client.get(PATH + "/metadata").json()
    assert meta == body


def test_etag_and_if_none_match(client: httpx.Client) -> None:
    client.put(PATH, content=b"v1")
    etag = client.get(PATH).headers["etag"]
    assert client.get(PATH, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(PATH, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert client.get(PATH, headers={"If-None-Match": '"other"'}).status_code == 200
    client.put(PATH, content=b"v2")
    assert client.get(PATH, headers={"If-None-Match": etag}).content == b"v2"
    assert (
        client.get(PATH, params={"version": 1}, headers={"If-None-Match": etag}).status_code == 304
    )


def test_range_requests(client: httpx.Client) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB, several chunks, compressed in the store
    client.put(PATH, content=data)
    part = client.get(PATH, headers={"Range": "bytes=1000-1099"})
    assert part.status_code == 206
    assert part.content == data[1000:1100]
    assert part.headers["content-range"] == f"bytes 1000-1099/{len(data)}"
    assert part.headers["content-length"] == "100"
    tail = client.get(PATH, headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]
    open_end = client.get(PATH, headers={"Range": f"bytes={len(data) - 5}-"})
    assert open_end.content == data[-5:]
    across = client.get(PATH, headers={"Range": "bytes=1048570-1048585"})
    assert across.content == data[1048570:1048586]
    past = client.get(PATH, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(data)}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"
    ignored = client.get(PATH, headers={"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200
    assert ignored.content == data


def test_create_only_and_idempotent_put(client: httpx.Client, service: ThreadServer) -> None:
    assert client.put(PATH, content=b"one", headers={"If-None-Match": "*"}).status_code == 201
    refused = client.put(PATH, content=b"two", headers={"If-None-Match": "*"})
    assert refused.status_code == 412
    assert refused.json()["error"]["code"] == "already_exists"
    same = client.put(PATH, content=b"one")
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert client.put(PATH, content=b"one", params={"force": "true"}).json()["version"] == 2
    versions = client.get(PATH + "/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get(PATH, params={"version": 1}).content == b"one"


def test_tags_and_delete(client: httpx.Client) -> None:
    client.put(PATH, content=b"x")
    assert client.put(PATH + "/tags", json={"tags": ["b", "a"]}).json()["tags"] == ["a", "b"]
    assert client.post(PATH + "/tags", json={"tags": ["c"]}).json()["tags"] == ["a", "b", "c"]
    assert client.request("DELETE", PATH + "/tags", params={"tag": ["a"]}).json()["tags"] == [
        "b",
        "c",
    ]
    bad = client.put(PATH + "/tags", json={"tags": ["no spaces"]})
    assert bad.status_code == 422
    found = client.get("/v1/artifacts", params={"tag": "c"}).json()["items"]
    assert [f["task_id"] for f in found] == ["1.1"]
    assert client.delete(PATH).json() == {"deleted": 1}
    assert client.get(PATH).status_code == 404
    assert client.delete(PATH).status_code == 404


def test_listing_filters_and_errors(client: httpx.Client) -> None:
    for task in ("1", "2"):
        for kind in ("diff", "log"):
            client.put(f"/v1/artifacts/spec-a/{task}/{kind}", content=f"{task}{kind}".encode())
    client.put("/v1/artifacts/spec-b/1/test", content=b"{}")
    items = client.get("/v1/artifacts", params={"spec_name": "spec-a"}).json()["items"]
    assert len(items) == 4
    logs = client.get("/v1/artifacts", params={"artifact_type": "log"}).json()["items"]
    assert {(i["spec_name"], i["task_id"]) for i in logs} == {("spec-a", "1"), ("spec-a", "2")}
    after = items[1]["created_at"]
    later = client.get("/v1/artifacts", params={"created_after": after}).json()["items"]
    assert len(later) == 4  # inclusive: items 1, 2, 3 of spec-a and spec-b's
    for params, code in (
        ({"limit": 0}, "validation_error"),
        ({"limit": -5}, "validation_error"),
        ({"limit": 100000}, "validation_error"),
        ({"created_after": "yesterday"}, "validation_error"),
        ({"created_after": "2026-01-01T00:00:00"}, "invalid_input"),
        ({"spec_name": "../x"}, "invalid_name"),
        ({"artifact_type": "binary"}, "validation_error"),
        ({"cursor": "not-a-cursor"}, "invalid_input"),
    ):
        response = client.get("/v1/artifacts", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == code, params


def test_keyset_pagination_is_stable_under_concurrent_uploads(client: httpx.Client) -> None:
    existing = set()
    for number in range(60):
        client.put(f"/v1/artifacts/page/{number}/diff", content=b"x%d" % number)
        existing.add(str(number))
    stop = threading.Event()
    uploaded: list[str] = []

    def keep_uploading() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as other:
            number = 0
            while not stop.is_set():
                other.put(f"/v1/artifacts/page/new-{number}/diff", content=b"n")
                uploaded.append(f"new-{number}")
                # A new version of an existing artifact moves it to the end of the order.
                other.put(f"/v1/artifacts/page/{number % 60}/diff", content=b"v%d" % number)
                number += 1

    writer = threading.Thread(target=keep_uploading)
    writer.start()
    try:
        rows: list[tuple[str, int]] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"spec_name": "page", "limit": 7}
            if cursor is not None:
                params["cursor"] = cursor
            page = client.get("/v1/artifacts", params=params).json()
            rows += [(item["task_id"], item["version"]) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Let the writer get at least one round in between every two pages.
            before = len(uploaded)
            deadline = time.monotonic() + 10
            while len(uploaded) == before and time.monotonic() < deadline:
                time.sleep(0.002)
    finally:
        stop.set()
        writer.join()
    assert uploaded, "the writer did not run during the listing"
    assert len(rows) == len(set(rows)), "a duplicate across pages"
    seen = {task for task, _ in rows}
    assert existing <= seen, f"gaps: {sorted(existing - seen)}"
    assert seen - existing <= set(uploaded)


class _TiedStore:
    """A stand-in for ``ArtifactStore.search``: every row has the same ``created_at``."""

    def __init__(self, count: int) -> None:
        moment = datetime(2026, 1, 1, tzinfo=UTC)
        self.rows = [
            ArtifactMetadata(
                uri=f"file:///x/tie/{n:03d}/log.txt",
                task_id=f"{n:03d}",
                spec_name="tie",
                type=ArtifactType.LOG,
                size=1,
                checksum="sha256:" + "0" * 64,
                created_at=moment,
                compressed=False,
                original_size=1,
                mime_type="text/plain",
            )
            for n in range(count)
        ]

    def search(
        self, *, limit: int, created_after: datetime | None = None, **_: object
    ) -> list[object]:
        found = [r for r in self.rows if created_after is None or r.created_at >= created_after]
        return list(found[:limit])


def test_pagination_pages_through_rows_of_one_timestamp() -> None:
    store = _TiedStore(300)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = list_page(store, limit=7, cursor=cursor)  # type: ignore[arg-type]
        seen += [meta.task_id for meta in page]
        if cursor is None:
            break
    assert seen == [f"{n:03d}" for n in range(300)]


def test_usage_export_and_admin_routes(client: httpx.Client) -> None:
    client.put("/v1/artifacts/exp/1/diff", content=b"diff one")
    client.put("/v1/artifacts/exp/2/log", content=b"log two")
    usage = client.get("/v1/usage").json()
    assert usage["total"]["artifact_count"] == 2
    assert set(usage["by_spec"]) == {"exp"}
    assert set(usage["by_type"]) == {"diff", "log"}

    exported = client.get("/v1/export", params={"spec_name": "exp"})
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert archive.read("exp/1/diff.txt") == b"diff one"
        assert json.loads(archive.read("manifest.json"))["artifact_count"] == 2
    one_task = client.get("/v1/export", params={"task_id": "2", "spec_name": "exp"})
    with zipfile.ZipFile(io.BytesIO(one_task.content)) as archive:
        assert "exp/2/log.txt" in archive.namelist()
        assert "exp/1/diff.txt" not in archive.namelist()
    assert client.get("/v1/export").status_code == 422
    assert client.get("/v1/export", params={"spec_name": ".."}).status_code == 422

    assert client.post("/v1/verify").json()["corrupted"] == []
    cleanup = client.post("/v1/cleanup", params={"dry_run": "true"}).json()
    assert cleanup["dry_run"] is True
    assert "removed_orphans" in client.post("/v1/repair").json()
    assert client.post("/v1/reindex").json() == {"records": 2}


def test_bad_paths_are_json_4xx(client: httpx.Client) -> None:
    for path, status in (
        ("/v1/artifacts/a/b/binary", 422),
        ("/v1/artifacts/.hidden/b/diff", 422),
        ("/v1/artifacts/a/b/diff?version=0", 422),
        ("/v1/artifacts/a/b/diff?version=-1", 422),
        ("/v1/artifacts/a/b/diff?version=x", 422),
        (f"/v1/artifacts/{'a' * 300}/b/diff", 422),
        ("/v1/artifacts/a/b%00c/diff", 422),
        ("/v1/artifacts/a/b/diff?version=99999999999", 422),
        ("/v1/artifacts/a%2Fb/c/diff", 404),
        ("/v1/nothing", 404),
    ):
        response = client.get(path)
        assert response.status_code == status, (path, response.text)
        assert set(response.json()["error"]) == {"code", "message"}
    bad_meta = client.put(PATH, content=b"x", headers={"X-Artifact-Metadata": "{nope"})
    assert bad_meta.status_code == 422
    assert client.get(PATH).status_code == 404


def test_max_upload_size_is_413_and_stores_nothing(service_factory: ServiceFactory) -> None:
    server = service_factory(max_upload_size=1000)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        declared = client.put(PATH, content=b"x" * 1001)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b"y" * 300

        streamed = client.put(PATH, content=chunked())
        assert streamed.status_code == 413
        form = client.post(
            "/artifacts",
            files={"file": ("f", b"z" * 2000)},
            data={"type": "log", "metadata": '{"spec_name": "chat-app", "task_id": "1.1"}'},
        )
        assert form.status_code == 413
        assert client.put(PATH, content=b"x" * 1000).status_code == 201
    assert [m.original_size for m in server.store.search()] == [1000]
    objects = [info.key for info in server.store.backend.list("")]
    assert len(objects) == 2  # one object, one record: nothing left by the refused uploads


def test_viewer_hook_gets_browsers_only(service: ThreadServer, client: httpx.Client) -> None:
    from fastapi import Request, Response

    from necrocode.artifact_store.naming import ArtifactKey

    client.put(PATH, content=b"raw bytes")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert client.get(PATH, headers=browser).content == b"raw bytes"  # no viewer installed

    async def viewer(request: Request, key: ArtifactKey, version: int | None) -> Response:
        return Response(f"<p>{key.path} v{version}</p>", media_type="text/html")

    service.app.state.viewer = viewer
    page = client.get("/artifacts/chat-app/1.1/log?version=1", headers=browser)
    assert page.text == "<p>chat-app/1.1/log.txt v1</p>"
    assert page.headers["vary"] == "Accept"
    assert client.get(PATH, headers={"Accept": "*/*"}).content == b"raw bytes"
    assert client.get(PATH, params={"raw": 1}, headers=browser).content == b"raw bytes"
    assert client.get(PATH, headers={"Accept": "text/html;q=0.5, */*"}).content == b"raw bytes"


def test_metrics_count_requests(client: httpx.Client) -> None:
    client.put(PATH, content=b"abc")
    client.get(PATH)
    text = client.get("/metrics").text
    assert 'necrocode_http_requests_total{method="PUT",' in text
    assert "necrocode_upload_seconds_count 1.0" in text
    assert "necrocode_download_seconds_count 1.0" in text
    assert "necrocode_http_received_bytes_total 3.0" in text


def test_no_docs_page_pulls_a_cdn(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 404
    schema = client.get("/openapi.json").json()
    assert "/v1/artifacts/{spec_name}/{task_id}/{artifact_type}" in schema["paths"]


def test_a_client_hanging_up_mid_download_harms_nothing(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    data = bytes(range(256)) * 32768  # 8 MiB
    client.put(PATH, content=data)
    for _ in range(3):
        with client.stream("GET", PATH) as response:
            first = next(response.iter_raw(65536))
            assert first == data[: len(first)]
        # leaving the block closes the connection with most of the body unread
    assert client.get(PATH).content == data
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_content_filters_page_newest_first(client: httpx.Client) -> None:
    for number in range(7):
        text = b"step ok\nERROR: disk on fire\n" if number % 2 == 0 else b"all fine\n"
        client.put(f"/v1/artifacts/logs/{number}/log", content=text)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"has_errors": "true", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/v1/artifacts", params=params).json()
        seen += [item["task_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["6", "4", "2", "0"]  # newest first, every failing log once
    oldest = client.get("/v1/artifacts", params={"has_errors": "false", "order": "oldest"})
    assert [item["task_id"] for item in oldest.json()["items"]] == ["1", "3", "5"]
    assert client.get("/v1/artifacts", params={"order": "sideways"}).status_code == 422
