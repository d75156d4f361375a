"""The SVG timelines: lanes, segments, their data attributes, scale and size."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from loopscope.report import render_timeline, render_timelines
from loopscope.trace import Trace

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def lanes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-lane"]: g for g in root.iter(f"{SVG}g") if "data-lane" in g.attrib}


def segments(element: ET.Element) -> list[ET.Element]:
    return [r for r in element.iter(f"{SVG}rect") if r.attrib.get("class") == "seg"]


def test_the_async_blocking_timeline_has_a_lane_per_request_and_one_for_the_loop(
    seed_traces: list[Trace],
) -> None:
    root = parse(render_timeline(seed_traces[1]))
    found = lanes(root)
    assert list(found) == ["request:R1", "request:R2", "request:R3", "loop:4242"]
    labels = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "label"]
    assert labels == ["R1 POST /login", "R2 POST /info", "R3 POST /history", "event loop"]
    blocked = [s for s in segments(found["loop:4242"]) if s.attrib["data-state"] == "loop-blocked"]
    assert [s.attrib["data-request"] for s in blocked] == ["R1", "R2", "R3"]
    assert {s.attrib["data-where"] for s in blocked} == {"demo/db.py:41"}


def test_each_segment_carries_what_the_tooltip_shows(seed_traces: list[Trace]) -> None:
    root = parse(render_timeline(seed_traces[1]))
    r2 = segments(lanes(root)["request:R2"])
    queued, blocked = r2[0], next(s for s in r2 if s.attrib["data-state"] == "loop-blocked")
    assert queued.attrib["data-state"] == "queued"
    assert float(queued.attrib["data-start-ms"]) == pytest.approx(0.4)
    assert blocked.attrib["data-route"] == "POST /info"
    assert float(blocked.attrib["data-dur-ms"]) == pytest.approx(1001.0)
    assert float(blocked.attrib["data-cpu-ms"]) == pytest.approx(0.2)
    assert float(blocked.attrib["data-start-ms"]) == pytest.approx(1003.4, abs=0.5)


def test_the_blocking_timeline_shows_each_worker_thread(seed_traces: list[Trace]) -> None:
    found = lanes(parse(render_timeline(seed_traces[0])))
    threads = [key for key in found if key.startswith("thread:")]
    assert threads == [f"thread:AnyIO worker thread {i}" for i in (1, 2, 3)]
    states = {s.attrib["data-state"] for key in threads for s in segments(found[key])}
    assert states == {"in-thread"}


def test_shared_scale_puts_the_runs_on_one_time_axis(seed_traces: list[Trace]) -> None:
    svgs = render_timelines(seed_traces, shared_scale=True)
    ticks = [
        [t.text for t in parse(svg).iter(f"{SVG}text") if t.attrib.get("class") == "tick"]
        for svg in svgs
    ]
    assert ticks[0] == ticks[1] == ticks[2]
    assert "3000" in ticks[2]  # the async run is drawn on the async-blocking run's 3 s scale
    marks = [float(re.findall(r'data-makespan-ms="([\d.]+)"', svg)[0]) for svg in svgs]
    assert marks[2] < marks[1] / 2


def test_without_a_shared_scale_each_run_fills_the_width(seed_traces: list[Trace]) -> None:
    svg = render_timelines(seed_traces, shared_scale=False)[2]
    ticks = [t.text for t in parse(svg).iter(f"{SVG}text") if t.attrib.get("class") == "tick"]
    assert "3000" not in ticks


def test_names_from_the_trace_are_escaped(seed_traces: list[Trace]) -> None:
    trace = seed_traces[2]
    trace.requests[0].route = '/x"><script>alert(1)</script>'
    svg = render_timeline(trace)
    assert "<script>" not in svg
    parse(svg)


def test_two_hundred_requests_shrink_their_lanes_and_merge_tiny_segments(
    make_many: Callable[[int], Trace],
) -> None:
    trace = make_many(200)
    svg = render_timeline(trace)
    assert len(svg) < 2_000_000
    root = parse(svg)
    found = lanes(root)
    assert len([k for k in found if k.startswith("request:")]) == 200
    heights = {float(s.attrib["height"]) for key in found for s in segments(found[key])}
    assert min(heights) >= 3
    assert 'data-merged="' in svg
    drawn = sum(len(segments(g)) for g in found.values())
    recorded = sum(len(r.segments) for r in trace.requests) + len(trace.lanes)
    assert drawn < recorded


def test_a_client_only_run_draws_its_requests_in_flight(client_only: Trace) -> None:
    root = parse(render_timeline(client_only))
    found = lanes(root)
    assert list(found) == ["request:R1", "request:R2", "request:R3"]
    assert all(g.find(f"{SVG}rect[@class='client']") is not None for g in found.values())
