"""Log viewer open time: ``python -m benchmarks.viewer_open [--mib 50] [--runs 5]``.

Serves one store holding a 1 KiB log and a big log (50 MiB by default) on
127.0.0.1 and opens each log's page in Debian's chromium (Playwright), timing
from navigation to the first line painted. The big log is timed cold (the
first open, which starts spooling it in the background) and warm (spooled);
the 1 KiB log is the baseline measured in the same run, in rotation. The
target is that the big log opens as fast as the small one (ratio >= 0.5, i.e.
at most twice the baseline's time) and in well under a second. The number of
DOM elements after opening and after jumping to the last line is reported too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, expect, sync_playwright

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType
from necrocode.artifact_store.service.app import create_app
from necrocode.artifact_store.service.server import bind
from necrocode.artifact_store.service.settings import ServiceSettings

MiB = 1024 * 1024
ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
]


def log_chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes of numbered log lines with colours."""
    sent = 0
    number = 0
    while sent < size:
        lines = []
        for _ in range(10_000):
            number += 1
            lines.append(f"{number:09d} \x1b[32mok\x1b[0m step payload {'x' * 40}\n")
        data = "".join(lines).encode()[: size - sent]
        sent += len(data)
        yield data


class Server:
    """The service over ``store`` in a thread, on a free loopback port."""

    def __init__(self, store: ArtifactStore) -> None:
        self.sock = bind("127.0.0.1", 0)
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        settings = ServiceSettings(host="127.0.0.1", port=port)
        self.app = create_app(store, settings)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        self.app.state.viewer_state.close()


def open_time(browser: Browser, url: str) -> tuple[float, int]:
    """Seconds from navigation to the first log line painted; DOM elements then."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector(".log-window .log-row >> nth=0")
        page.evaluate("new Promise(r => requestAnimationFrame(() => r()))")
        elapsed = time.perf_counter() - started
        elements = int(page.evaluate("document.getElementsByTagName('*').length"))
        return elapsed, elements
    finally:
        context.close()


def tail_elements(browser: Browser, url: str) -> int:
    """DOM elements after jumping to the log's last line."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = context.new_page()
        page.goto(url)
        # (the page's CSP forbids eval, so no wait_for_function: poll with expect)
        status = page.locator("[data-log-status]")
        expect(status).to_have_text(re.compile(r"^[0-9,]+ lines"), timeout=120_000)
        total = status.inner_text().split(" ")[0]
        page.locator(".log-viewport").focus()
        page.keyboard.press("G")
        expect(page.locator(f"#line-{total.replace(',', '')}")).to_be_visible()
        return int(page.evaluate("document.getElementsByTagName('*').length"))
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=50, help="size of the big log in MiB")
    parser.add_argument("--runs", type=int, default=5, help="timed opens of each page")
    options = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    args = [*ARGS, "--no-sandbox"] if os.geteuid() == 0 else ARGS
    with tempfile.TemporaryDirectory() as folder:
        config = ArtifactStoreConfig(base_path=Path(folder) / "store")
        with ArtifactStore(config) as store, Server(store) as server, sync_playwright() as pw:
            store.upload("small", "bench", ArtifactType.LOG, b"".join(log_chunks(1024)))
            store.upload("big", "bench", ArtifactType.LOG, log_chunks(options.mib * MiB))
            small = f"{server.url}/artifacts/bench/small/log"
            big = f"{server.url}/artifacts/bench/big/log"
            browser = pw.chromium.launch(executable_path=chromium, args=args)
            try:
                open_time(browser, small)  # warm the browser and the server
                cold, cold_elements = open_time(browser, big)
                small_times: list[float] = []
                big_times: list[float] = []
                for run in range(options.runs):
                    sides = [(small, small_times), (big, big_times)]
                    for url, times in sides if run % 2 == 0 else sides[::-1]:
                        times.append(open_time(browser, url)[0])
                after_tail = tail_elements(browser, big)
            finally:
                browser.close()
    base = statistics.median(small_times)
    warm = statistics.median(big_times)
    ratio = base / warm
    print(f"1 KiB log opens in {base * 1000:.0f} ms (median of {options.runs})")
    big_name = f"{options.mib} MiB log"
    print(f"{big_name}, first open (cold): {cold * 1000:.0f} ms, {cold_elements} elements")
    print(f"{options.mib} MiB log, warm: {warm * 1000:.0f} ms (median of {options.runs})")
    print(f"ratio 1 KiB time / {options.mib} MiB time: {ratio:.2f} (target >= 0.5)")
    print(f"DOM elements after jumping to the last line: {after_tail}")
    verdict = "met" if ratio >= 0.5 and max(cold, warm) < 1.0 else "missed"
    print(f"target: {verdict}")


if __name__ == "__main__":
    main()
