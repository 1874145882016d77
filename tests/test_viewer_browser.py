"""The viewer in a real browser: Playwright driving Debian's chromium against the service.

One browser and one seeded service for the module; a fresh browser context per
test whose every request is checked (nothing may leave 127.0.0.1) and whose
console must stay free of errors (a CSP violation would show there).
Screenshots go to tests/output/screenshots/ (and, with
NECROCODE_UPDATE_DOCS_IMAGES=1, to docs/images/ for the README).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType
from necrocode.artifact_store.service.settings import ServiceSettings

from .browser import Watched, screenshot, start, watched_context
from .service_server import ThreadServer
from .viewer_data import big_log_chunks, seed

READ_TOKEN = "read-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from start()


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadServer, dict[str, str]]]:
    root = tmp_path_factory.mktemp("viewer")
    config = ArtifactStoreConfig.model_validate(
        {
            "base_path": str(root / "store"),
            "versioning_enabled": True,
            "storage_quota": {"max_size_gb": 0.0001, "warn_threshold": 0.8},
        }
    )
    with ArtifactStore(config) as store:
        uris = seed(store)
        with ThreadServer(store, ServiceSettings(host="127.0.0.1", port=0)) as server:
            yield server, uris
            server.app.state.viewer_state.close()


@pytest.fixture
def watched(browser: Browser, seeded: tuple[ThreadServer, dict[str, str]]) -> Iterator[Watched]:
    server, _ = seeded
    with watched_context(browser, server.url) as context:
        yield context
        assert context.outside == [], f"requests left the server: {context.outside}"
        assert context.console_errors == [], context.console_errors


@pytest.fixture
def page(watched: Watched) -> Page:
    return watched.new_page()


@pytest.fixture
def url(seeded: tuple[ThreadServer, dict[str, str]]) -> str:
    return seeded[0].url


def _rows(page: Page) -> int:
    return page.locator(".log-window .log-row").count()


def test_home_lists_specs_usage_and_quota(page: Page, url: str) -> None:
    page.goto(url + "/")
    expect(page).to_have_title(re.compile("Artifacts"))
    rows = page.locator("#specs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("history-service")  # most recent activity first
    chat = page.locator("#specs tbody tr", has_text="chat-app")
    expect(chat).to_contain_text("1 passed")
    expect(chat).to_contain_text("1 failed")
    expect(page.locator("svg.chart")).to_have_count(2)
    expect(page.locator("svg.chart").first.locator("rect.bar")).to_have_count(2)
    expect(page.locator(".quota meter")).to_have_count(1)
    screenshot(page, "home", full_page=True, docs=True)


def test_spec_page_sorts_filters_and_searches(page: Page, url: str) -> None:
    page.goto(url + "/specs/chat-app")
    tasks = page.locator("#tasks tbody tr td:first-child")
    expect(tasks).to_have_count(2)
    screenshot(page, "spec", docs=True)
    page.get_by_role("link", name=re.compile("^Task")).click()
    expect(tasks).to_have_text(["1.1", "1.2"])
    page.get_by_role("link", name=re.compile("^Task")).click()
    expect(tasks).to_have_text(["1.2", "1.1"])
    page.get_by_role("link", name=re.compile("^Tests")).click()
    expect(tasks.first).to_have_text("1.2")  # failing first
    page.locator("select[name=type]").select_option("log")
    page.get_by_role("button", name="Filter").click()
    expect(tasks).to_have_text(["1.2"])
    page.goto(url + "/specs/chat-app")
    page.keyboard.press("/")
    page.keyboard.type("dead members")  # text of the title, in custom metadata
    page.keyboard.press("Enter")
    expect(tasks).to_have_text(["1.2"])
    page.goto(url + "/specs/chat-app?tag=needs-review")
    expect(tasks).to_have_text(["1.2"])
    # a task picked by a filter is shown with all its artifacts
    expect(page.locator("#tasks tbody tr").first).to_contain_text("diff")


def test_task_page_tabs_and_keyboard(page: Page, url: str) -> None:
    page.goto(url + "/specs/chat-app/tasks/1.2")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(3)
    expect(page.locator("#panel-diff")).to_be_visible()
    expect(page.locator("#panel-log")).to_be_hidden()
    expect(page.locator("#version-pick-diff option")).to_have_count(2)  # picker per tab
    tabs.first.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#panel-log")).to_be_visible()
    expect(page.locator("#panel-diff")).to_be_hidden()
    expect(page.locator("#tab-log")).to_be_focused()
    expect(page.locator("#panel-log .log-window .log-row").first).to_contain_text("necrocode run")
    page.keyboard.press("End")
    expect(page.locator("#panel-test")).to_be_visible()
    expect(page.locator("#panel-test .case").first).to_have_attribute("data-status", "failed")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "task", docs=True)
    # version history with compare-with-previous on the diff
    tabs.first.click()
    page.locator("#panel-diff").get_by_role("link", name="compare with previous").click()
    expect(page.locator("h1")).to_contain_text("v1 → v2")
    expect(page.locator(".diff-table tr.add")).to_contain_text(["8080"])
    screenshot(page, "compare")


def test_diff_viewer(page: Page, url: str) -> None:
    page.goto(url + "/artifacts/chat-app/1.2/diff")
    files = page.locator("#file-list li")
    expect(files).to_have_count(5)
    expect(files.nth(0)).to_contain_text("+10")
    expect(files.nth(0)).to_contain_text("\u22123")
    expect(files.nth(1)).to_contain_text("new")
    expect(files.nth(2)).to_contain_text("deleted")
    expect(files.nth(3)).to_contain_text("renamed")
    expect(files.nth(3)).to_contain_text("docs/protocol.md → docs/wire-protocol.md")
    expect(files.nth(4)).to_contain_text("binary")
    expect(page.locator("#file-4 .note")).to_contain_text("Binary file changed")
    # the <script> in the diff is text on the page, never run
    expect(page.locator("#file-2")).to_contain_text('<script>alert("diff")</script>')
    # keyboard: j jumps from file to file
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page.locator("#file-1")).to_have_class(re.compile("nav-current"))
    screenshot(page, "diff", full_page=True, docs=True)
    page.get_by_role("link", name="Side by side").click()
    expect(page.locator("table.split").first).to_be_visible()
    left = page.locator("#file-0 table.split td.code.del").first
    expect(left).to_contain_text("port: int = 8000")
    screenshot(page, "diff-split", full_page=True)


def test_large_diff_files_are_collapsed(
    page: Page, url: str, seeded: tuple[ThreadServer, dict[str, str]]
) -> None:
    store = seeded[0].store
    body = "".join(f"+line {n}\n" for n in range(3000))
    store.upload(
        "9.9",
        "chat-app",
        ArtifactType.DIFF,
        "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n"
        f"@@ -0,0 +1,3000 @@\n{body}"
        "diff --git a/small.txt b/small.txt\n--- a/small.txt\n+++ b/small.txt\n"
        "@@ -1 +1 @@\n-a\n+b\n",
    )
    page.goto(url + "/artifacts/chat-app/9.9/diff")
    expect(page.locator("#file-0 .note")).to_contain_text("collapsed")
    expect(page.locator("#file-0 tr.add")).to_have_count(0)
    expect(page.locator("#file-1 tr.add")).to_have_count(1)
    page.get_by_role("link", name="Show this file").click()
    expect(page.locator("#file-0 tr.add")).to_have_count(3000)
    expect(page.locator("#file-1")).to_have_count(0)


def test_log_viewer_ansi_anchors_sections_and_search(page: Page, url: str) -> None:
    page.goto(url + "/artifacts/chat-app/1.2/log#L120")
    row = page.locator("#line-120")
    expect(row).to_have_class(re.compile(r"\bhl\b"))
    expect(row).to_be_in_viewport()
    expect(row).to_contain_text("test_case_112")
    # colours are classes on spans; no escape code reaches the page
    expect(page.locator("#line-120 .a-fg2")).to_have_text("PASSED")
    text = page.locator(".log-window").inner_text()
    assert "\x1b" not in text and "[0m" not in text
    # a range of lines
    page.goto(url + "/artifacts/chat-app/1.2/log#L130-L134")
    expect(page.locator(".log-row.hl")).to_have_count(5)
    expect(page.locator("#line-134")).to_be_in_viewport()
    # clicking a line number, then shift-clicking another, selects a range
    page.locator("#line-131 .ln").click()
    expect(page).to_have_url(re.compile("#L131$"))
    page.locator("#line-133 .ln").click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile("#L131-L133$"))
    expect(page.locator(".log-row.hl")).to_have_count(3)
    # errors found while spooling link to their lines
    errors = page.locator("[data-log-errors] li")
    expect(errors.first).to_contain_text("Traceback")
    page.goto(url + "/artifacts/chat-app/1.2/log")
    # sections: the ::group:: folds away its lines
    header = page.locator("#line-2")
    expect(header).to_have_class(re.compile("section"))
    expect(page.locator("#line-3")).to_have_count(1)
    header.locator(".lt").click()
    expect(page.locator("#line-3")).to_have_count(0)
    expect(page.locator(".log-window .log-row").nth(2)).to_have_id("line-8")
    header.locator(".lt").click()
    expect(page.locator("#line-3")).to_have_count(1)
    # server-side search; n jumps between matches
    page.locator("#log-q").fill("skipped")
    page.locator("#log-q").press("Enter")
    expect(page.locator("[data-log-hits]")).to_contain_text("1 of 9 matching lines")
    expect(page.locator(".log-row.hit.current")).to_contain_text("test_case_41")
    page.locator(".log-viewport").focus()
    page.keyboard.press("n")
    expect(page.locator(".log-row.hit.current")).to_contain_text("test_case_82")
    page.keyboard.press("G")
    expect(page.locator(".log-window .log-row").last).to_contain_text("done in 42.1 s")
    expect(page.locator(".log-window .log-row").last.locator("span").last).to_have_css(
        "color", "rgb(255, 135, 0)"
    )
    page.keyboard.press("g")
    expect(page.locator("#line-1")).to_be_in_viewport()
    page.goto(url + "/artifacts/chat-app/1.2/log?view=tail")
    expect(page.locator("#line-415")).to_be_in_viewport()
    page.goto(url + "/artifacts/chat-app/1.2/log#L395")
    expect(page.locator("#line-395")).to_contain_text("test_case_387")
    assert page.evaluate("window.scrollY") == 0  # the log scrolls, not the page
    screenshot(page, "log", docs=True)


def test_test_results_failures_first(page: Page, url: str) -> None:
    page.goto(url + "/artifacts/chat-app/1.2/test")
    cases = page.locator(".case")
    expect(cases).to_have_count(2)
    expect(cases.first).to_have_attribute("data-status", "failed")
    expect(cases.first).to_contain_text("pytest -q tests/test_rooms.py")
    expect(cases.first.locator("pre.output")).to_be_visible()  # failures open
    expect(cases.nth(1).locator("pre.output")).to_be_hidden()  # passes folded
    expect(page.locator("#failing")).to_contain_text("test_broadcast_drops_dead_members")
    expect(cases.first).to_contain_text("<script>document.title='pwned'</script>")
    page.goto(url + "/artifacts/history-service/2.1/test")
    statuses = page.locator(".case").evaluate_all("cs => cs.map(c => c.dataset.status)")
    assert statuses == ["failed", "error", "skipped", "passed", "passed"]
    expect(page.locator(".case").first).to_contain_text("assert 49 == 50")
    screenshot(page, "test", full_page=True, docs=True)


def test_artifact_content_never_executes(page: Page, url: str) -> None:
    for path in (
        "/artifacts/chat-app/1.2/log#L413",
        "/artifacts/chat-app/1.2/test",
        "/artifacts/chat-app/1.2/diff",
        "/specs/chat-app/tasks/1.2",
    ):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        assert page.title() != "pwned"
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    expect(page.locator("body")).to_contain_text("<script>document.title='pwned'</script>")


def test_no_request_leaves_the_server(page: Page, url: str, watched: Watched) -> None:
    page.goto(url + "/artifacts/chat-app/1.2/log")
    page.wait_for_load_state("networkidle")
    assert watched.requests and all(r.startswith(url) for r in watched.requests)
    # the guard itself works: a request elsewhere is stopped and recorded
    with pytest.raises(PlaywrightError):
        page.goto("http://192.0.2.1/elsewhere")
    assert watched.outside == ["http://192.0.2.1/elsewhere"]
    watched.outside.clear()


def test_raw_download_and_permalink(page: Page, url: str, watched: Watched) -> None:
    watched.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(url + "/artifacts/chat-app/1.2/diff")
    page.get_by_role("button", name="Copy permalink").click()
    expect(page.locator(".flash")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{url}/artifacts/chat-app/1.2/diff?version=2"
    raw = page.get_by_role("link", name="Raw").get_attribute("href")
    assert raw == "/artifacts/chat-app/1.2/diff?version=2&raw=1"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "diff.txt"
    # the version picker shows v1
    page.locator("#version-pick-diff").select_option("1")
    expect(page.locator("h1")).to_contain_text("v1")
    expect(page.locator("#file-0 .diff-table")).to_contain_text("8081")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    root = tmp_path_factory.mktemp("guarded")
    tokens = root / "tokens"
    tokens.write_text(f"read {READ_TOKEN} reviewer\nadmin {ADMIN_TOKEN} lead\n")
    config = ArtifactStoreConfig(base_path=root / "store", versioning_enabled=True)
    with ArtifactStore(config) as store:
        seed(store)
        settings = ServiceSettings(host="127.0.0.1", port=0, tokens_file=tokens)
        with ThreadServer(store, settings) as server:
            yield server
            server.app.state.viewer_state.close()


@pytest.mark.parametrize(
    ("token", "can_delete"), [(READ_TOKEN, False), (ADMIN_TOKEN, True)], ids=["read", "admin"]
)
def test_tokens_prompt_and_scopes(
    browser: Browser, guarded: ThreadServer, token: str, can_delete: bool
) -> None:
    anonymous = browser.new_context()
    try:
        response = anonymous.request.get(
            guarded.url + "/specs/chat-app/tasks/1.2", headers={"Accept": "text/html"}
        )
        assert response.status == 401  # the browser shows its password prompt
        assert response.headers["www-authenticate"].startswith("Basic ")
    finally:
        anonymous.close()
    context = browser.new_context(http_credentials={"username": "me", "password": token})
    try:
        page = context.new_page()
        page.goto(guarded.url + "/artifacts/chat-app/1.2/diff")
        expect(page.locator(".who")).to_contain_text("reviewer" if not can_delete else "lead")
        expect(page.get_by_role("button", name="Delete")).to_have_count(1 if can_delete else 0)
        if can_delete:
            page.on("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="Delete").click()
            expect(page).to_have_url(re.compile("/specs/chat-app/tasks/1.2(#tab-[a-z]+)?$"))
            expect(page.get_by_role("tab")).to_have_count(2)
    finally:
        context.close()


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service over a store holding one 50 MB log; its base URL."""
    root = tmp_path_factory.mktemp("big")
    with ArtifactStore(ArtifactStoreConfig(base_path=root / "store")) as store:
        uri = store.upload("big", "chat-app", ArtifactType.LOG, big_log_chunks(50 * 1024 * 1024))
        assert store.get_metadata(uri).original_size >= 50 * 1024 * 1024
        with ThreadServer(store, ServiceSettings(host="127.0.0.1", port=0)) as server:
            yield server.url
            server.app.state.viewer_state.close()


def test_a_50_mb_log_keeps_the_dom_small(browser: Browser, big_log: str) -> None:
    url = big_log
    with watched_context(browser, url) as watched:
        page = watched.new_page()
        _check_big_log(page, url)
        assert watched.outside == [] and watched.console_errors == []


def _check_big_log(page: Page, url: str) -> None:
    page.goto(url + "/artifacts/chat-app/big/log")
    expect(page.locator(".log-window .log-row").first).to_contain_text("000000001 step")
    expect(page.locator("[data-log-status]")).to_have_text(
        re.compile(r"^[\d,]+ lines"), timeout=30_000
    )
    total = int(page.locator("[data-log]").get_attribute("data-total-lines") or 0)
    status = page.locator("[data-log-status]").inner_text()
    lines = int(status.split(" lines")[0].replace(",", ""))
    assert lines > 500_000 and total <= lines
    assert _rows(page) < 200
    assert page.evaluate("document.getElementsByTagName('*').length") < 3000
    page.goto(url + "/artifacts/chat-app/big/log#L654321")
    expect(page.locator("#line-654321")).to_contain_text("000654321 step")
    expect(page.locator("#line-654321")).to_be_in_viewport()
    page.keyboard.press("G")
    last = page.locator(".log-window .log-row").last
    expect(last).to_have_id(f"line-{lines}")
    assert _rows(page) < 200
    page.locator("#log-q").fill("000400000 step")
    page.locator("#log-q").press("Enter")
    expect(page.locator(".log-row.hit.current")).to_have_id("line-400000")
    assert page.evaluate("document.getElementsByTagName('*').length") < 3000
    screenshot(page, "log-50mb")


def test_the_open_time_benchmark_runs() -> None:
    from .test_benchmarks import run_module

    done = run_module("benchmarks.viewer_open", "--mib", "2", "--runs", "1", timeout=180)
    assert done.returncode == 0, done.stderr
    assert re.search(r"ratio 1 KiB time / 2 MiB time: \d+\.\d\d", done.stdout)
    assert re.search(r"DOM elements after jumping to the last line: \d+", done.stdout)
