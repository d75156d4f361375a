"""The self-contained HTML report."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loopscope.report import ReportError, render_html, write_html
from loopscope.trace import Trace


class Fetches(HTMLParser):
    """Every attribute by which a page could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value:
                self.found.append((tag, name, value))
            if tag == "link":
                self.found.append((tag, name, value or ""))


def test_the_report_has_a_section_per_run_with_explanation_timeline_and_tables(
    seed_traces: list[Trace], one_thread: Trace
) -> None:
    html = render_html([*seed_traces, one_thread], title="The seed")
    sections = re.findall(r'<section class="run" id="run-(\d)" data-mode="([^"]+)"', html)
    assert sections == [
        ("1", "blocking"),
        ("2", "async-blocking"),
        ("3", "async"),
        ("4", "one-thread"),
    ]
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="timeline"') == 4
    assert html.count('<table class="latency">') == 4
    assert html.count('<table class="states">') == 4
    assert html.count('<table class="blocks">') == 4
    assert html.count('<table class="pool">') == 4
    assert "<title>The seed</title>" in html
    assert "The event loop was blocked 3 times" in html
    assert '<span class="badge simulated">simulated</span>' in html
    assert "demo/db.py:41" in html


def test_the_report_fetches_nothing(seed_traces: list[Trace]) -> None:
    html = render_html(seed_traces)
    parser = Fetches()
    parser.feed(html)
    links = [found for found in parser.found if not found[2].startswith("#")]
    assert links == []
    # The SVG namespace is a name, not a fetch; there is no other address in the file.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html


def test_a_run_without_server_data_still_renders(client_only: Trace) -> None:
    html = render_html([client_only])
    assert "client view only" in html
    assert "No server-side data." in html
    assert html.count('class="seg"') == 0


def test_a_run_without_any_request_still_renders() -> None:
    from loopscope.trace import Run

    html = render_html([Trace(run=Run(mode="empty", app="x"))])
    assert "No requests were recorded in this run." in html


def test_values_from_the_trace_are_escaped(seed_traces: list[Trace]) -> None:
    trace = seed_traces[0]
    trace.run.notes.append("<script>alert('note')</script>")
    trace.run.app = "<img src=x onerror=alert(1)>"
    html = render_html([trace])
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt;" in html


def test_five_runs_of_sixty_requests_stay_under_two_megabytes(
    make_many: Callable[[int], Trace],
) -> None:
    html = render_html([make_many(60) for _ in range(4)] + [make_many(3)])
    assert len(html.encode()) < 2_000_000


def test_write_html_writes_the_file_and_returns_its_path(
    seed_traces: list[Trace], tmp_path: Path
) -> None:
    path = write_html(seed_traces, tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_write_html_into_a_missing_directory_is_a_clear_error(
    seed_traces: list[Trace], tmp_path: Path
) -> None:
    with pytest.raises(ReportError, match="Cannot write the report to"):
        write_html(seed_traces, tmp_path / "missing" / "report.html")
