"""Failed requests in the console and the HTML report, from a hand-built trace."""

from __future__ import annotations

import pytest
from rich.console import Console

from loopscope.measure.failures import Failure
from loopscope.report.console import trace_summary
from loopscope.report.html import render_html
from loopscope.trace import Request, Run, Trace

MS = 1_000_000


def _trace() -> Trace:
    requests = [
        Request("R1", "GET", "/pay", "/pay", 500, 0, 5 * MS),
        Request("R2", "GET", "/pay", "/pay", 500, 0, 6 * MS),
        Request("R3", "GET", "/ok", "/ok", 200, 0, 4 * MS),
        Request("R4", "POST", "/ok", "/ok", None, 0, 2 * MS, error="ClientOSError: reset"),
    ]
    return Trace(run=Run(mode="trace", app="shop:app"), requests=requests)


def _text(trace: Trace, failures: list[Failure] | None) -> str:
    console = Console(width=200, record=True)
    for part in trace_summary(trace, failures):
        console.print(part)
    return console.export_text()


def test_the_summary_gives_each_failing_routes_statuses_and_cause() -> None:
    causes = [
        Failure("GET /pay", 500, 2, "KeyError", "'card'", "shop/pay.py:9"),
        Failure("POST /ok", None, 1, "ClientOSError", "reset"),
    ]
    text = _text(_trace(), causes)
    assert "│ GET /pay │     2 │" in text and "500×2" in text
    # GET and POST on one path are two routes, each with its own statuses.
    assert "│ GET /ok  │     1 │" in text and "│ POST /ok │     1 │" in text
    assert "no answer×1" in text and "200×1" in text
    assert "KeyError: 'card' at shop/pay.py:9" in text
    assert "FAILED 2 of 2 (500×2): KeyError: 'card' at shop/pay.py:9" in text
    assert "3 of 4 requests failed (5xx or no answer)" in text


def test_a_saved_trace_without_causes_still_shows_what_failed() -> None:
    text = _text(_trace(), None)
    assert "500×2" in text
    assert "cause unknown (not in the server's log)" in text
    assert "ClientOSError: reset" in text


def test_a_trace_with_no_failure_has_no_failure_table_or_warning() -> None:
    trace = _trace()
    trace.requests = trace.requests[2:3]
    text = _text(trace, [])
    assert "Failed requests" not in text and "FAILED" not in text
    assert 'role="alert"' not in render_html([trace])


def test_the_html_report_warns_and_labels_each_failed_request() -> None:
    html = render_html([_trace()], failures=[[Failure("/pay", 500, 2, "KeyError", "'card'")]])
    assert 'class="failures" role="alert"' in html
    assert "/pay 500×2: KeyError: &#39;card&#39;" in html
    assert ">R1 500 GET /pay<" in html and ">R4 no answer POST /ok<" in html
    assert ">R3 GET /ok<" in html


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_causes_path_and_line_is_never_cut_at_any_width(width: int) -> None:
    from rich.console import Console

    from loopscope.report.failures import failure_table
    from loopscope.trace.model import Failure

    where = "shop/orders/fulfilment/service.py:142"
    failures = [
        Failure(route="GET /orders/{order_id}/items", status=500, count=6,
                error_type="ValueError", message="no such order", where=where),
        Failure(route="POST /orders", status=None, count=2),
    ]  # fmt: skip
    console = Console(width=width, record=True, color_system=None)
    console.print(failure_table(failures))
    text = console.export_text()
    assert any(where in line for line in text.splitlines()), text
    assert "no answer×2" in text and "500×6" in text
