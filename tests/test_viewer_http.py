"""The viewer over real HTTP (no browser): negotiation, JSON twins, headers, errors."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType

from .service_server import ThreadServer
from .viewer_data import DIFF, log_text, runner_report, seed

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PAGES = [
    "/",
    "/specs/chat-app",
    "/specs/chat-app/tasks/1.2",
    "/specs/chat-app/tasks/1.2/diff",
    "/specs/chat-app/tasks/1.2/log",
    "/specs/chat-app/tasks/1.2/test",
    "/specs/history-service/tasks/2.1/test",
    "/specs/chat-app/tasks/1.2/diff/compare?from=1&to=2",
    "/artifacts/chat-app/1.2/diff?layout=split",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of one seeded service for the tests that only read."""
    config = ArtifactStoreConfig(
        base_path=tmp_path_factory.mktemp("viewer-http"), versioning_enabled=True
    )
    with ArtifactStore(config) as store:
        seed(store)
        with ThreadServer(store) as server, httpx.Client(base_url=server.url, timeout=30) as opened:
            yield opened
            server.app.state.viewer_state.close()


@pytest.fixture
def fresh(service: ThreadServer) -> Iterator[tuple[ThreadServer, httpx.Client]]:
    """A seeded service of its own, for tests that upload."""
    seed(service.store)
    with httpx.Client(base_url=service.url, timeout=30) as opened:
        yield service, opened
    service.app.state.viewer_state.close()


def test_the_artifact_url_serves_a_page_to_browsers_and_bytes_to_the_rest(
    client: httpx.Client,
) -> None:
    page = client.get("/artifacts/chat-app/1.2/diff", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["vary"] == "Accept"
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "5 files changed" in page.text
    raw = client.get("/artifacts/chat-app/1.2/diff", headers={"Accept": "*/*"})
    assert raw.content == DIFF.encode() and raw.headers["vary"] == "Accept"
    # raw bytes may never run anything in a browser, whatever their media type
    assert "sandbox" in raw.headers["content-security-policy"]
    assert raw.headers["x-content-type-options"] == "nosniff"
    forced = client.get("/artifacts/chat-app/1.2/diff?raw=1", headers=HTML)
    assert forced.content == DIFF.encode()
    download = client.get("/artifacts/chat-app/1.2/diff?download=1", headers=HTML)
    assert download.content == DIFF.encode()
    assert download.headers["content-disposition"].startswith("attachment")
    old = client.get("/artifacts/chat-app/1.2/diff?version=1", headers=HTML)
    assert 'Diff <span class="muted">v1</span>' in old.text


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_html_without_inline_script_or_style(client: httpx.Client, path: str) -> None:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, response.text
    html = response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert " style=" not in html and "<style" not in html
    assert "<script>document.title" not in html  # artifact text is escaped
    assert re.search(r'<script src="/ui/static/viewer\.js\?v=\w+" defer>', html)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_json_twin(client: httpx.Client, path: str) -> None:
    html = client.get(path, headers=HTML).text
    link = re.search(r'<a href="([^"]+)">This page as JSON</a>', html)
    assert link is not None
    twin = client.get(link[1].replace("&amp;", "&"))
    assert twin.status_code == 200 and twin.headers["content-type"] == "application/json"
    context = twin.json()
    assert context["page"] in ("home", "spec", "task", "artifact", "compare")
    assert context["title"] in html.replace("&amp;", "&")


def test_json_twins_carry_what_the_pages_show(client: httpx.Client) -> None:
    home = client.get("/", headers={"Accept": "application/json"}).json()
    assert [s["name"] for s in home["specs"]] == ["history-service", "chat-app"]
    assert home["usage"]["artifact_count"] == 7
    spec = client.get("/specs/chat-app?format=json&sort=task&dir=asc").json()
    assert [t["task"] for t in spec["tasks"]] == ["1.1", "1.2"]
    assert spec["tasks"][1]["tests"] == "fail" and spec["tasks"][0]["tests"] == "pass"
    # from the content summaries the store made at upload
    assert spec["tasks"][1]["changes"] == {"files": 5, "added": 20, "removed": 7}
    # The four "FAILED" test lines, the traceback, its ConnectionResetError, the ERROR line.
    assert spec["tasks"][1]["log_errors"] == 7
    diff = client.get("/specs/chat-app/tasks/1.2/diff?format=json").json()["diff"]
    assert [f["status"] for f in diff["files"]] == [
        "modified",
        "added",
        "deleted",
        "renamed",
        "modified",
    ]
    assert (diff["added"], diff["removed"]) == (20, 7)
    test = client.get("/specs/history-service/tasks/2.1/test?format=json").json()["test"]
    assert [c["status"] for c in test["report"]["cases"]][:3] == ["failed", "error", "skipped"]
    log = client.get("/specs/chat-app/tasks/1.2/log?format=json").json()["log"]
    assert log["head"][0]["spans"][0][1] == "a-b"  # bold prompt, as a class
    assert log["head"][0]["spans"][0][0] == "$ necrocode run --task 1.2"


def test_the_spec_page_filters(client: httpx.Client) -> None:
    def tasks(query: str) -> list[str]:
        data = client.get(f"/specs/chat-app?format=json&{query}").json()
        return [t["task"] for t in data["tasks"]]

    assert tasks("type=log") == ["1.2"]
    assert tasks("tag=needs-review") == ["1.2"]
    assert tasks("q=ROOMS%20AND") == ["1.1"]  # case-insensitive, in custom metadata
    assert tasks("q=1.1") == ["1.1"]
    assert sorted(tasks("after=2000-01-01&before=2999-12-31")) == ["1.1", "1.2"]
    assert tasks("before=2000-01-01") == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/specs/nope", 404, "not_found"),
        ("/specs/chat-app/tasks/0.0", 404, "not_found"),
        ("/specs/chat-app?sort=size;drop", 422, "invalid_input"),
        ("/specs/chat-app?after=yesterday", 422, "invalid_input"),
        ("/specs/chat-app?type=binary", 422, "invalid_input"),
        ("/specs/chat-app/tasks/1.2/diff?version=0", 422, "invalid_input"),
        ("/specs/chat-app/tasks/1.2/diff?version=99", 404, "not_found"),
        ("/specs/chat-app/tasks/1.2/diff?file=x", 422, "invalid_input"),
        ("/specs/chat-app/tasks/1.2/diff?file=12", 422, "invalid_input"),
        ("/specs/chat-app/tasks/1.2/diff?layout=3d", 422, "invalid_input"),
        ("/specs/chat-app/tasks/1.2/nope", 422, "invalid_name"),
        ("/specs/chat-app/tasks/1.2/diff/compare?from=1", 422, "invalid_input"),
        ("/specs/chat-app/tasks/%2E%2E", 422, "invalid_name"),
        ("/ui/api/chat-app/1.2/log/lines?count=100000", 422, "invalid_input"),
        ("/ui/api/chat-app/1.2/log/lines?start=abc", 422, "invalid_input"),
        ("/ui/api/chat-app/1.2/log/search?q=", 422, "invalid_input"),
        ("/ui/api/chat-app/1.2/log/search?q=x&limit=0", 422, "invalid_input"),
        ("/ui/api/chat-app/1.2/log/drop", 404, "not_found"),
        ("/ui/api/chat-app/9.9/log/lines", 404, "not_found"),
    ],
)
def test_bad_requests_get_typed_errors(
    client: httpx.Client, path: str, status: int, code: str
) -> None:
    as_json = client.get(path, headers={"Accept": "application/json"})
    assert as_json.status_code == status
    assert as_json.json()["error"]["code"] == code
    if not path.startswith("/ui/api/"):
        page = client.get(path, headers=HTML)
        assert page.status_code == status and page.headers["content-type"].startswith("text/html")
        assert "error-box" in page.text


def test_log_lines_tail_and_search(client: httpx.Client) -> None:
    expected = log_text().split("\n")[:-1]  # not splitlines: GitLab markers carry \r
    base = "/ui/api/chat-app/1.2/log"
    lines = client.get(f"{base}/lines?version=1&start=9&count=2").json()
    assert lines["total_lines"] == len(expected)
    assert [line["n"] for line in lines["lines"]] == [9, 10]
    assert lines["lines"][0]["spans"][1] == ["PASSED", "a-fg2", None, None]
    tail = client.get(f"{base}/lines?start=-1&count=5").json()
    assert tail["lines"][0]["n"] == len(expected)
    assert tail["lines"][0]["spans"][0][2] == "rgb(255,135,0)"  # 256-colour: data for the CSSOM
    hits = client.get(f"{base}/search?q=skipped&limit=5").json()
    assert [h["line"] for h in hits["hits"]] == [49, 90, 131, 172, 213]
    more = client.get(f"{base}/search?q=skipped&after={hits['next_after']}").json()
    assert len(more["hits"]) == 4 and more["next_after"] is None
    info = client.get(f"{base}/info?wait=1").json()
    assert info["ready"] and [s["title"] for s in info["sections"]] == [
        "Install dependencies",
        "Run the tests",
    ]
    assert info["error_count"] == 3 and info["warning_count"] == 1


def test_static_files_are_served_from_the_package(client: httpx.Client) -> None:
    css = client.get("/ui/static/viewer.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/ui/static/viewer.js")
    assert js.headers["content-type"].startswith("text/javascript") and "textContent" in js.text
    for bad in ("/ui/static/core.py", "/ui/static/..%2Fcore.py", "/ui/static/%2e%2e"):
        assert client.get(bad).status_code == 404
    assert "http://" not in css.text and "https://" not in css.text + js.text.replace("http://", "")


def test_comparing_test_results_lists_status_changes(
    fresh: tuple[ThreadServer, httpx.Client],
) -> None:
    service, client = fresh
    service.store.upload("1.1", "chat-app", ArtifactType.TEST_RESULT, runner_report(False))
    data = client.get("/specs/chat-app/tasks/1.1/test/compare?from=1&to=2&format=json").json()
    changes = data["status_changes"]
    assert changes == [
        {"id": "pytest -q tests/test_rooms.py", "before": "passed", "after": "failed"}
    ]
    assert data["diff"]["added"] > 0


def test_a_report_that_does_not_parse_is_shown_as_text(
    fresh: tuple[ThreadServer, httpx.Client],
) -> None:
    service, client = fresh
    service.store.upload("3.1", "chat-app", ArtifactType.TEST_RESULT, b"not json <b>at all</b>")
    data = client.get("/specs/chat-app/tasks/3.1/test?format=json").json()
    assert data["kind"] == "log" and "Not a test report" in data["test"]["problem"]
    assert data["log"]["head"][0]["spans"][0][0] == "not json <b>at all</b>"
    page = client.get("/specs/chat-app/tasks/3.1/test", headers=HTML).text
    assert "not json &lt;b&gt;at all&lt;/b&gt;" in page
    junit = client.get("/specs/history-service/tasks/2.1/test?format=json").json()
    assert junit["test"]["report"]["format"] == "junit"


def test_an_empty_store_has_a_home_page(service: ThreadServer) -> None:
    with httpx.Client(base_url=service.url) as client:
        page = client.get("/", headers=HTML)
        assert page.status_code == 200 and "No artifacts yet" in page.text
        assert client.get("/?format=json").json()["specs"] == []
    service.app.state.viewer_state.close()


def test_the_viewer_can_be_left_out(tmp_path_factory: pytest.TempPathFactory) -> None:
    from necrocode.artifact_store.service.app import create_app

    config = ArtifactStoreConfig(base_path=tmp_path_factory.mktemp("bare"))
    with ArtifactStore(config) as store:
        store.upload("1", "s", ArtifactType.LOG, b"text")
        app = create_app(store, viewer=False)
        assert app.state.viewer is None

        async def fetch() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return [
                    await client.get("/", headers=HTML),
                    await client.get("/ui/static/viewer.css"),
                    await client.get("/artifacts/s/1/log", headers=HTML),
                ]

        home, css, artifact = asyncio.run(fetch())
        assert home.status_code == 404 and css.status_code == 404
        assert artifact.content == b"text"  # browsers get the bytes without a viewer


def test_a_corrupted_artifact_is_never_shown_as_fine(
    fresh: tuple[ThreadServer, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    service, client = fresh
    store = service.store
    body = b"".join(b"line %d\n" % n for n in range(5000))
    for kind in (ArtifactType.DIFF, ArtifactType.LOG):
        meta = store.get_metadata(store.upload("8.1", "chat-app", kind, body))
        stored = Path(store.config.base_path) / meta.object_key
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0xFF
        stored.write_bytes(bytes(data))
    diff = client.get("/specs/chat-app/tasks/8.1/diff", headers=HTML)
    assert diff.status_code == 500 and "error-box" in diff.text
    assert client.get("/specs/chat-app/tasks/8.1/diff?format=json").json()["error"]["code"] == (
        "integrity_error"
    )
    info = client.get("/ui/api/chat-app/8.1/log/info?wait=1")
    assert info.status_code == 500 and info.json()["error"]["code"] == "integrity_error"
    lines = client.get("/ui/api/chat-app/8.1/log/lines?start=4000")
    assert lines.json()["error"]["code"] == "integrity_error"
    logged = [r for r in caplog.records if r.name == "necrocode.artifact_store.service"]
    assert any("IntegrityError" in r.getMessage() for r in logged)
    assert 'necrocode_store_errors_total{error="IntegrityError"}' in client.get("/metrics").text


def test_plain_unified_diffs_and_pytest_json_reports(
    fresh: tuple[ThreadServer, httpx.Client],
) -> None:
    service, client = fresh
    plain = (
        "--- app.py\t2026-12-01 10:00:00\n+++ app.py\t2026-12-01 10:05:00\n"
        "@@ -1,2 +1,2 @@\n-print('hi')\n+print('hello')\n keep\n"
    )
    service.store.upload("7.1", "chat-app", ArtifactType.DIFF, plain)
    diff = client.get("/specs/chat-app/tasks/7.1/diff?format=json").json()["diff"]
    assert [(f["path"], f["added"], f["removed"]) for f in diff["files"]] == [("app.py", 1, 1)]
    report = {
        "created": 1.0,
        "duration": 0.5,
        "summary": {"passed": 1, "failed": 1, "total": 2},
        "tests": [
            {"nodeid": "t.py::ok", "outcome": "passed"},
            {"nodeid": "t.py::bad", "outcome": "failed", "call": {"longrepr": "assert 1 == 2"}},
        ],
    }
    service.store.upload("7.1", "chat-app", ArtifactType.TEST_RESULT, json.dumps(report))
    test = client.get("/specs/chat-app/tasks/7.1/test?format=json").json()["test"]["report"]
    assert test["format"] == "pytest-json"
    assert [c["status"] for c in test["cases"]] == ["failed", "passed"]
    page = client.get("/specs/chat-app/tasks/7.1/test", headers=HTML).text
    assert page.index("t.py · </span>bad</span>") < page.index("t.py · </span>ok</span>")
