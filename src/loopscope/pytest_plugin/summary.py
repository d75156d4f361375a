"""The suite's loop blocks, added up test by test for the terminal summary: the blocks per route
and place, and the routes that waited longest for the loop (their `ready` time: woken, runnable,
waiting for a busy or blocked loop to get to them). Pure: traces and judgements in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.pytest_plugin.judge import Judgement, PlaceBlocks
from loopscope.trace.model import Trace
from loopscope.trace.verdicts import VerdictKind


@dataclass(slots=True)
class PlaceTotals:
    """One route's blocks at one place across the suite: how many, in how many tests, how
    long in all and at most, and how many of them a marker allowed."""

    route: str
    where: str
    kind: VerdictKind
    count: int = 0
    total_ns: int = 0
    longest_ns: int = 0
    allowed: int = 0
    tests: set[str] = field(default_factory=set)


@dataclass(slots=True)
class RouteReady:
    """One route's `ready` time across the suite: per request summed, the longest request's and
    the total over `requests` requests."""

    route: str
    requests: int = 0
    total_ns: int = 0
    longest_ns: int = 0


@dataclass(slots=True)
class SuiteSummary:
    """What the guard saw across the suite; `add` each watched test."""

    block_ms: float
    watched: int = 0
    with_requests: int = 0
    requests: int = 0
    broke: list[str] = field(default_factory=list)
    places: dict[tuple[str, str], PlaceTotals] = field(default_factory=dict)
    ready: dict[str, RouteReady] = field(default_factory=dict)
    outside: int = 0
    minor: int = 0
    warmup: int = 0
    precise: bool = True

    def add(self, nodeid: str, trace: Trace, judgement: Judgement) -> None:
        """Count one test: its requests' ready time and its judged blocks."""
        self.watched += 1
        if trace.requests:
            self.with_requests += 1
            self.requests += len(trace.requests)
            self.precise = self.precise and trace.run.precise
        if judgement.failed:
            self.broke.append(nodeid)
        self.outside += len(judgement.outside)
        self.minor += sum(p.group.count for p in judgement.minor)
        self.warmup += sum(p.group.count for p in judgement.warmup)
        for place in judgement.blocking:
            self._add_place(nodeid, place, allowed=False)
        for place in judgement.allowed:
            self._add_place(nodeid, place, allowed=True)
        for request in trace.requests:
            ready = sum(s.duration_ns for s in request.segments if s.state == "ready")
            totals = self.ready.setdefault(request.endpoint, RouteReady(request.endpoint))
            totals.requests += 1
            totals.total_ns += ready
            totals.longest_ns = max(totals.longest_ns, ready)

    def _add_place(self, nodeid: str, place: PlaceBlocks, *, allowed: bool) -> None:
        key = (place.verdict.route, place.group.where)
        totals = self.places.setdefault(key, PlaceTotals(*key, kind=place.verdict.kind))
        totals.count += place.group.count
        totals.total_ns += place.group.total_ns
        totals.longest_ns = max(totals.longest_ns, place.group.longest_ns)
        totals.allowed += place.group.count if allowed else 0
        totals.tests.add(nodeid)

    def worst_places(self) -> list[PlaceTotals]:
        """Every route and place that blocked the loop, longest total first."""
        return sorted(self.places.values(), key=lambda p: (-p.total_ns, p.route, p.where))

    def slowest_ready(self, n: int = 5) -> list[RouteReady]:
        """The `n` routes whose requests waited longest for the loop (some ready time only)."""
        waited = [r for r in self.ready.values() if r.longest_ns > 0]
        waited.sort(key=lambda r: (-r.longest_ns, r.route))
        return waited[:n]
