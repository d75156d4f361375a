"""Failed requests in words, for the console and the HTML report alike.

A tool that teaches must never be wrong where it speaks: a route whose requests failed gets its
statuses and the app's exception next to its numbers, and its verdict says the timings describe
error handling, not the route's work.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from loopscope.measure.failures import Failure, is_failed, summarize_failures
from loopscope.trace.model import Trace


def failures_of(trace: Trace, failures: Sequence[Failure] | None = None) -> list[Failure]:
    """`failures` if given, else the trace's own (causes from the server log, kept in
    `Run.failures`), else what its requests alone tell."""
    if failures is not None:
        return list(failures)
    if trace.run.failures:
        return list(trace.run.failures)
    return summarize_failures(trace.requests)


def failed_count(trace: Trace) -> int:
    """How many of the trace's requests failed (a 5xx answer or none)."""
    return sum(1 for r in trace.requests if is_failed(r))


def status_text(failure: Failure) -> str:
    """`500×6`, or `no answer×3`."""
    status = "no answer" if failure.status is None else str(failure.status)
    return f"{status}×{failure.count}"


def failure_line(failure: Failure) -> str:
    """`/boom 500×6: RuntimeError: boom at app.py:12`."""
    cause = failure.cause or "cause unknown (not in the server's log)"
    return f"{failure.route} {status_text(failure)}: {cause}"


def failure_warning(trace: Trace) -> str | None:
    """One sentence when any request failed, else `None`."""
    failed = failed_count(trace)
    if not failed:
        return None
    return (
        f"{failed} of {len(trace.requests)} requests failed (5xx or no answer): their timings "
        "describe error handling, not the routes' real work."
    )


def route_failure_note(trace: Trace, route: str, failures: Sequence[Failure]) -> str | None:
    """What to put before a route's verdict when some of its requests failed."""
    mine = [f for f in failures if f.route == route]
    if not mine:
        return None
    failed = sum(f.count for f in mine)
    total = sum(1 for r in trace.requests if r.endpoint == route)
    causes = "; ".join(dict.fromkeys(f.cause for f in mine if f.cause)) or "cause unknown"
    return f"FAILED {failed} of {total} ({', '.join(status_text(f) for f in mine)}): {causes}"


def failure_table(failures: Sequence[Failure]) -> FailureTable | None:
    """The console's table of failed requests by route, status and cause; `None` if none."""
    if not failures:
        return None
    rows = [
        (f.route, status_text(f), f.cause or "cause unknown (not in the server's log)")
        for f in failures
    ]
    return FailureTable(rows)


class FailureTable:
    """Failed requests, one (route, status, cause) per row, laid out for the width they are
    drawn at: a cause's `at path:line` is never cut, so the cause sits in a column of its own
    only where that column holds its longest word, else below its route at full width."""

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        route_w = min(max(len(route) for route, _, _ in self.rows), width // 3)
        status_w = max(len(status) for _, status, _ in self.rows)
        longest = max(len(word) for _, _, cause in self.rows for word in cause.split())
        table = Table(title="[bold red]Failed requests[/]", title_justify="left")
        # Borders and padding of a three-column table take 10 characters.
        if width - route_w - status_w - 10 >= longest:
            table.add_column("route", overflow="fold", width=route_w)
            table.add_column("status", no_wrap=True)
            table.add_column("cause", overflow="fold")
            for route, status, cause in self.rows:
                table.add_row(escape(route), status, escape(cause))
        else:
            table.add_column("route, status and cause", overflow="fold")
            for route, status, cause in self.rows:
                head = Text(f"{route}  {status}", style="bold")
                table.add_row(Group(head, Padding(Text(cause), (0, 0, 0, 2))))
        yield table
