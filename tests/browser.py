"""Playwright over Debian's chromium for the viewer's browser tests.

One browser per test session (launching costs about a second); a fresh context
per test. Every request a page makes is checked: anything not addressed to the
service on 127.0.0.1 is aborted and recorded, so a test can prove that no
request leaves the machine. Console errors (a CSP violation is one) are
recorded too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

OUTPUT = Path(__file__).resolve().parent / "output" / "screenshots"
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
#: Set to 1 to copy the README's screenshots into docs/images/ as well. Read at import:
#: the suite's clean_environ fixture removes NECROCODE_* variables from each test.
UPDATE_DOCS = os.environ.get("NECROCODE_UPDATE_DOCS_IMAGES") == "1"

CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """The Debian chromium on PATH (``.ci/run`` installs it when missing)."""
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    return found


def launch(playwright: Playwright) -> Browser:
    """Chromium headless, without the sandbox when running as root (containers)."""
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return playwright.chromium.launch(executable_path=chromium_path(), args=args, headless=True)


@dataclass
class Watched:
    """A browser context whose every request is checked against the allowed origin."""

    context: BrowserContext
    origin: str
    outside: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def new_page(self) -> Page:
        page = self.context.new_page()
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        return page


@contextlib.contextmanager
def watched_context(browser: Browser, origin: str) -> Iterator[Watched]:
    """A fresh context that lets requests reach ``origin`` only (the rest are aborted)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
    watched = Watched(context, origin)
    allowed = urlsplit(origin)

    def check(route: Route) -> None:
        url = route.request.url
        watched.requests.append(url)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) == (allowed.scheme, allowed.netloc):
            route.continue_()
        else:
            watched.outside.append(url)
            route.abort()

    context.route("**/*", check)
    try:
        yield watched
    finally:
        context.close()


def screenshot(page: Page, name: str, *, full_page: bool = False, docs: bool = False) -> Path:
    """Save a screenshot as test output (and, when asked, as the README's copy)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    target = OUTPUT / f"{name}.png"
    page.screenshot(path=str(target), full_page=full_page)
    if docs and UPDATE_DOCS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, DOCS_IMAGES / f"{name}.png")
    return target


def start() -> Iterator[Browser]:
    """Playwright and one browser, stopped at the end."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()
