"""The HTML report in a real browser: headless Debian Chromium driven by Playwright.

Checks what only a browser can: the page runs without console errors, loads nothing but itself,
draws each run's lanes, and shows the tooltip on hover.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from loopscope.report import screenshot, write_html
from loopscope.report.png import CHROMIUM_ARGS
from loopscope.trace import Trace

pytestmark = pytest.mark.browser

# Another path (one that does not exist) shows how a machine without Chromium runs this module.
CHROMIUM = Path(os.environ.get("LOOPSCOPE_TEST_CHROMIUM", "/usr/bin/chromium"))
# The start of the skip message, which tests/conftest.py counts for its closing summary.
MISSING = "Chromium is not installed"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    message = (
        f"{MISSING} at {CHROMIUM}: install it with `apt-get install chromium` "
        "to run the browser tests."
    )
    # .ci/run sets LOOPSCOPE_REQUIRE_BROWSER: there a skip would hide untested code.
    if os.environ.get("CI") == "true" or os.environ.get("LOOPSCOPE_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(chromium: Path) -> Iterator[Browser]:
    # One Playwright per test: a running sync Playwright owns the thread's event loop, and
    # `screenshot` starts its own.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def report(seed_traces: list[Trace], one_thread: Trace, tmp_path: Path) -> Path:
    return write_html([*seed_traces, one_thread], tmp_path / "report.html")


class Opened:
    """A page with the report loaded, and everything it asked for or complained about."""

    def __init__(self, browser: Browser, report: Path) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.url = report.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")


@pytest.fixture
def opened(browser: Browser, report: Path) -> Iterator[Opened]:
    page = Opened(browser, report)
    yield page
    page.page.close()


def test_the_report_loads_without_console_errors_or_any_network_request(opened: Opened) -> None:
    opened.page.wait_for_timeout(200)
    assert opened.errors == []
    assert opened.requests == [opened.url]


def test_each_run_draws_its_request_lanes_the_event_loop_and_the_worker_threads(
    opened: Opened,
) -> None:
    page = opened.page
    expected = {
        "blocking": [
            *("request:R1", "request:R2", "request:R3", "loop:4242"),
            *(f"thread:AnyIO worker thread {i}" for i in (1, 2, 3)),
        ],
        "async-blocking": ["request:R1", "request:R2", "request:R3", "loop:4242"],
        "async": ["request:R1", "request:R2", "request:R3", "loop:4242"],
        "one-thread": [
            *("request:R1", "request:R2", "request:R3", "loop:4242"),
            "thread:AnyIO worker thread 1",
        ],
    }
    for mode, lanes in expected.items():
        section = page.locator(f'section.run[data-mode="{mode}"]')
        found = section.locator("svg.timeline g.lane").evaluate_all(
            "gs => gs.map(g => g.dataset.lane)"
        )
        assert found == lanes, mode
        assert section.locator("svg.timeline rect.seg").count() >= len(lanes)
    blocked = page.locator(
        'section.run[data-mode="async-blocking"] g[data-lane="loop:4242"] '
        'rect.seg[data-state="loop-blocked"]'
    )
    assert blocked.evaluate_all("rs => rs.map(r => r.dataset.request)") == ["R1", "R2", "R3"]
    box = blocked.first.bounding_box()
    assert box is not None and box["width"] > 100  # one second is a long bar, not a sliver


def test_hovering_a_segment_shows_its_request_state_times_and_line(opened: Opened) -> None:
    page = opened.page
    tooltip = page.locator("#tooltip")
    assert tooltip.is_hidden()
    page.locator(
        'section.run[data-mode="async-blocking"] g[data-lane="request:R2"] '
        'rect.seg[data-state="loop-blocked"]'
    ).hover()
    assert tooltip.is_visible()
    lines = tooltip.inner_text().splitlines()
    assert lines[0] == "R2 · POST /info"
    assert lines[1] == "loop-blocked — blocking the loop"
    assert lines[2].startswith("start 1003.") and lines[2].endswith("duration 1001.0 ms")
    assert lines[3] == "CPU 0.200 ms · waiting 1000.8 ms"
    assert lines[4] == "at demo/db.py:41"
    page.locator("h1").hover()
    assert tooltip.is_hidden()
    assert opened.errors == []


def test_a_full_page_screenshot_of_the_report_is_written(
    chromium: Path, report: Path, tmp_path: Path
) -> None:
    png = screenshot(report, tmp_path / "report.png", width=1400, executable=chromium)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1400
    assert height > 2000  # the whole page, not just the first screen
