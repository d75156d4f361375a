"""SVG timelines: the seed's diagrams drawn from a Trace.

One lane per request (R1, R2, R3 with their routes), then the event loop, then each worker
thread, coloured by state, on a time axis in ms from the run's first client send, with the
makespan marked. Every bar carries `data-*` attributes that the report's tooltip reads.

Long runs stay readable and small: lanes shrink down to `MIN_LANE_H` px, and runs of segments
narrower than a pixel are merged into one bar coloured by the state that filled most of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from loopscope.report import _svg
from loopscope.report.axes import LABEL_W, PLOT_W, WIDTH, legend, makespan_marker, time_axis
from loopscope.report.palette import CLIENT_COLOUR, STATE_COLOURS
from loopscope.report.words import short_where
from loopscope.trace.analysis import makespan_ns, span_ns
from loopscope.trace.model import Request, Segment, State, Trace, WorkerLife, request_lane

LEGEND_H = 52  # two rows of swatches at WIDTH
MARK_H = 20  # the makespan label above the lanes
AXIS_H = 40
GROUP_GAP = 16
MAX_LANE_H = 22
MIN_LANE_H = 3
"""Lanes never get thinner than this; 200 requests still show as 200 distinct stripes."""
REQUESTS_MAX_H = 720
"""Height the request lanes shrink into once there are more than fit at `MAX_LANE_H`."""
THREADS_MAX_H = 240
"""The same for worker-thread lanes (anyio's pool has up to 40 threads)."""
LABEL_MIN_FONT = 9
"""Below this, lane labels are shown for every n-th lane only."""
MIN_BAR_PX = 1.0
"""Segments narrower than this merge with their sub-pixel neighbours into one bar."""
QUEUE_LANE_H = 36
"""The accept queue's lane: a step chart of its depth, the peak at full height."""
QUEUE_COLOUR = STATE_COLOURS["queued"]
LIFE_COLOURS = {"started": "#009E73", "died": "#000000"}
"""The ticks where a worker started during the run and where it died."""


@dataclass(frozen=True)
class _Frame:
    """Where a run sits on the page: ns → px, and each request's route for the machine lanes."""

    origin: int
    scale: float
    routes: dict[str, str]

    def x(self, t_ns: int) -> float:
        return LABEL_W + max(0, t_ns - self.origin) * self.scale


@dataclass
class _Lane:
    key: str
    label: str
    group: str
    segments: list[Segment]
    request: Request | None = None
    life: WorkerLife | None = None


@dataclass
class _Bar:
    """One drawn rect: a segment, or several sub-pixel segments merged."""

    first: Segment
    start_ns: int
    end_ns: int
    by_state: dict[State, int] = field(default_factory=dict)
    cpu_ns: int | None = None
    merged: int = 0

    def add(self, segment: Segment) -> None:
        self.end_ns = max(self.end_ns, segment.end_ns)
        self.by_state[segment.state] = self.by_state.get(segment.state, 0) + segment.duration_ns
        if segment.cpu_ns is not None:
            self.cpu_ns = (self.cpu_ns or 0) + segment.cpu_ns
        self.merged += 1

    @property
    def state(self) -> State:
        return max(self.by_state, key=lambda s: self.by_state[s])


def render_timelines(traces: list[Trace], shared_scale: bool = True) -> list[str]:
    """One SVG per trace; with `shared_scale` all use the longest run's time scale, so the seed's
    "everything done at T4 vs T1.5" shows as bars of different lengths."""
    if not shared_scale:
        return [render_timeline(trace) for trace in traces]
    span = max((_visible_ns(trace) for trace in traces), default=0)
    return [render_timeline(trace, span_ns=span) for trace in traces]


def render_timeline(trace: Trace, span_ns: int | None = None) -> str:
    """The SVG timeline of one run, `span_ns` wide (default: the run's own span)."""
    span = max(span_ns or _visible_ns(trace), 1)
    frame = _Frame(
        _origin(trace), PLOT_W / (span * 1.02), {r.id: r.endpoint for r in trace.requests}
    )
    lanes = _lanes(trace)
    body: list[str] = []
    y = LEGEND_H + MARK_H
    top = y
    heights = _lane_heights(lanes)
    if trace.accept_queue:
        body.append(_svg.text(_GROUP_TITLES["queue"], x=8, y=y - 4, class_="group"))
        body.append(_queue_lane(trace, y, frame))
        y += QUEUE_LANE_H + GROUP_GAP
    for group in ("requests", "loop", "threads"):
        members = [lane for lane in lanes if lane.group == group]
        if not members:
            continue
        lane_h = heights[group]
        body.append(_svg.text(_GROUP_TITLES[group], x=8, y=y - 4, class_="group"))
        every = max(1, math.ceil(LABEL_MIN_FONT / max(lane_h - 2, 1)))
        for index, lane in enumerate(members):
            body.append(_lane(lane, y, lane_h, frame, show_label=index % every == 0))
            y += lane_h
        y += GROUP_GAP
    bottom = y - GROUP_GAP
    mode = trace.run.mode
    makespan = makespan_ns(trace)
    height = bottom + AXIS_H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"'
        f"{_svg.attrs(aria_label=f'Timeline of the {trace.run.mode} run', data_mode=mode)}>",
        legend(),
        time_axis(span, frame.scale, top, bottom),
        *body,
        makespan_marker(makespan, frame.x(frame.origin + makespan), top, bottom)
        if trace.requests
        else "",
        "</svg>",
    ]
    return "".join(parts)


_GROUP_TITLES = {
    "queue": "ACCEPT QUEUE (KERNEL)",
    "requests": "REQUESTS",
    "loop": "EVENT LOOP",
    "threads": "WORKER THREADS",
}


def _origin(trace: Trace) -> int:
    return (span_ns(trace) or (0, 0))[0]


def _visible_ns(trace: Trace) -> int:
    span = span_ns(trace)
    if span is None:
        return 0
    ends = [s.end_ns for r in trace.requests for s in r.segments] + [s.end_ns for s in trace.lanes]
    return max([span[1], *ends]) - span[0]


def _lanes(trace: Trace) -> list[_Lane]:
    lanes = [
        _Lane(request_lane(r.id), _request_label(r), "requests", r.segments, r)
        for r in trace.requests
    ]
    machine: dict[str, list[Segment]] = {}
    for segment in trace.lanes:
        machine.setdefault(segment.lane, []).append(segment)
    if not any(key.startswith("loop:") for key in machine) and trace.loop_blocks:
        # A trace with blocks but no loop lane (the watchdog alone, e.g. under uvloop) still
        # shows when each worker's loop was stuck.
        worker = {r.id: r.worker for r in trace.requests}
        for b in trace.loop_blocks:
            served_by = worker.get(b.request_id or "")
            lane = f"loop:{served_by if served_by is not None else ''}"
            machine.setdefault(lane, []).append(
                Segment(lane, "loop-blocked", b.start_ns, b.end_ns, b.cpu_ns, b.where, b.request_id)
            )
    if any(key.startswith("loop:") for key in machine):
        # Every worker's loop gets its lane, an idle one too: an uneven spread shows.
        for process in trace.workers:
            machine.setdefault(f"loop:{process.pid}", [])
    if not any(key.startswith("thread:") for key in machine):
        for call in trace.pool:
            if call.thread and call.started_ns is not None and call.finished_ns is not None:
                lane = f"thread:{call.thread}"
                machine.setdefault(lane, []).append(
                    Segment(
                        lane,
                        "in-thread",
                        call.started_ns,
                        call.finished_ns,
                        call.cpu_ns,
                        None,
                        call.request_id,
                    )
                )
    loops = sorted(key for key in machine if key.startswith("loop:"))
    threads = sorted((key for key in machine if key.startswith("thread:")), key=_natural)
    lives = {str(life.pid): life for life in trace.workers}
    for key in loops:
        pid = key.removeprefix("loop:")
        label = f"event loop (pid {pid})" if len(loops) > 1 and pid else "event loop"
        life = lives.get(pid)
        if life is not None and life.ended_ns is not None:
            label = f"event loop (pid {pid}, died)"
        lanes.append(_Lane(key, label, "loop", machine[key], life=life))
    for key in threads:
        lanes.append(_Lane(key, key.removeprefix("thread:"), "threads", machine[key]))
    return lanes


def _status(request: Request) -> str:
    return "no answer" if request.status is None else str(request.status)


def _request_label(request: Request) -> str:
    """`R3 /boom`, with the status first when it is an error, so it survives truncation."""
    if request.status is not None and request.status < 400:
        return f"{request.id} {request.endpoint}"
    return f"{request.id} {_status(request)} {request.endpoint}"


def _natural(key: str) -> list[int | str]:
    """Sort key that puts "thread 10" after "thread 9"."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _lane_heights(lanes: list[_Lane]) -> dict[str, int]:
    def fit(count: int, budget: int) -> int:
        return max(MIN_LANE_H, min(MAX_LANE_H, budget // max(count, 1)))

    return {
        "requests": fit(sum(lane.group == "requests" for lane in lanes), REQUESTS_MAX_H),
        "loop": MAX_LANE_H,
        "threads": fit(sum(lane.group == "threads" for lane in lanes), THREADS_MAX_H),
    }


def _lane(lane: _Lane, y: int, lane_h: int, frame: _Frame, show_label: bool) -> str:
    gap = 4 if lane_h >= 12 else (1 if lane_h >= 5 else 0)
    bar_h = lane_h - gap
    bar_y = y + gap / 2
    worker = lane.request.worker if lane.request is not None else None
    group = _svg.attrs(class_="lane", data_lane=lane.key, data_group=lane.group, data_worker=worker)
    out = [f"<g{group}>"]
    if show_label:
        font = min(12, max(LABEL_MIN_FONT, lane_h - 6))
        out.append(
            _svg.text(
                _svg.truncate(lane.label, 30),
                x=LABEL_W - 8,
                y=y + lane_h / 2 + font / 3,
                class_="label",
                font_size=font,
            )
        )
    request = lane.request
    if request is None:
        # The machine lanes get a pale track, so an idle loop reads as idle, not as missing.
        out.append(_svg.rect(x=LABEL_W, y=bar_y, width=PLOT_W, height=bar_h, class_="track"))
    else:
        x0, x1 = frame.x(request.sent_ns), frame.x(request.done_ns)
        out.append(
            _svg.rect(
                x=x0,
                y=y + lane_h / 2 - 0.5,
                width=max(x1 - x0, 1.0),
                height=1,
                fill=CLIENT_COLOUR,
                class_="client",
                data_status=_status(request),
            )
        )
    for bar in _bars(lane.segments, frame.scale):
        out.append(_bar(bar, bar_y, bar_h, frame, request))
        if request is None and bar.merged == 1 and bar_h >= 12:
            out.append(_bar_caption(bar, bar_y, bar_h, frame))
    if lane.life is not None:
        out.append(_life_marks(lane.life, y, lane_h, frame))
    out.append("</g>")
    return "".join(out)


def _bars(segments: list[Segment], scale: float) -> list[_Bar]:
    """Whole segments where they are a pixel wide or more; sub-pixel runs merged into one bar."""
    bars: list[_Bar] = []
    pending: _Bar | None = None
    for segment in sorted(segments, key=lambda s: s.start_ns):
        wide = segment.duration_ns * scale >= MIN_BAR_PX
        if pending is not None and (wide or (segment.start_ns - pending.end_ns) * scale > 0.5):
            bars.append(pending)
            pending = None
        bar = pending or _Bar(segment, segment.start_ns, segment.end_ns)
        bar.add(segment)
        if wide:
            bars.append(bar)
        else:
            pending = bar
    if pending is not None:
        bars.append(pending)
    return bars


def _bar(bar: _Bar, y: float, height: int, frame: _Frame, request: Request | None) -> str:
    x = frame.x(bar.start_ns)
    width = max((bar.end_ns - bar.start_ns) * frame.scale, MIN_BAR_PX)
    duration = bar.end_ns - bar.start_ns
    state = bar.state
    first = bar.first
    rid = first.request_id or (request.id if request is not None else "")
    out = _svg.rect(
        x=x,
        y=y,
        width=width,
        height=height,
        fill=STATE_COLOURS[state],
        class_="seg",
        data_request=rid,
        data_route=frame.routes.get(rid, ""),
        data_state=state,
        data_start_ms=f"{(bar.start_ns - frame.origin) / 1e6:.3f}",
        data_dur_ms=f"{duration / 1e6:.3f}",
        data_cpu_ms="" if bar.cpu_ns is None else f"{bar.cpu_ns / 1e6:.3f}",
        data_where=short_where(first.where) if first.where else "",
        data_merged=bar.merged if bar.merged > 1 else None,
        data_status=None if request is None else _status(request),
    )
    if bar.cpu_ns and duration > 0 and width * bar.cpu_ns / duration >= 0.5:
        # The dark strip is the CPU share: the seed's CPU-bound vs waiting, at a glance.
        strip = max(2.0, height * 0.3)
        out += _svg.rect(
            x=x,
            y=y + height - strip,
            width=width * min(1.0, bar.cpu_ns / duration),
            height=strip,
            class_="cpu",
        )
    return out


def _bar_caption(bar: _Bar, y: float, height: int, frame: _Frame) -> str:
    """The request's id inside a wide bar on the loop or a thread: whose coroutine or handler it
    was, as the seed's diagrams write "coroutine 1" on the loop."""
    width = (bar.end_ns - bar.start_ns) * frame.scale
    rid = bar.first.request_id
    if not rid or width < 10 + 7 * len(rid):
        return ""
    x = frame.x(bar.start_ns) + width / 2
    return _svg.text(rid, x=x, y=y + height / 2 + 4, class_="bar-caption")


def _life_marks(life: WorkerLife, y: int, lane_h: int, frame: _Frame) -> str:
    """A worker's start (when it began during the run: a replacement) and its death, as
    vertical ticks on its loop lane."""
    out = []
    marks = (("started", life.started_ns), ("died", life.ended_ns))
    for event, t_ns in marks:
        if t_ns is None or t_ns <= frame.origin:
            continue
        x = frame.x(t_ns)
        out.append(
            _svg.line(
                x1=x,
                x2=x,
                y1=y,
                y2=y + lane_h,
                class_=f"worker-{event}",
                stroke=LIFE_COLOURS[event],
                stroke_width=3,
                data_pid=life.pid,
                data_event=event,
                data_t_ms=f"{(t_ns - frame.origin) / 1e6:.3f}",
            )
        )
    return "".join(out)


def _queue_lane(trace: Trace, y: int, frame: _Frame) -> str:
    """The kernel's accept queue as a step chart: each bar's height is the depth sampled then,
    over the deepest sample."""
    samples = trace.accept_queue
    peak = max(s.depth for s in samples)
    label = f"accept queue (peak {peak})"
    out = [f"<g{_svg.attrs(class_='lane', data_lane='accept-queue', data_group='queue')}>"]
    out.append(
        _svg.text(label, x=LABEL_W - 8, y=y + QUEUE_LANE_H / 2 + 4, class_="label", font_size=12)
    )
    out.append(_svg.rect(x=LABEL_W, y=y, width=PLOT_W, height=QUEUE_LANE_H, class_="track"))
    for sample, following in zip(samples, [*samples[1:], None], strict=True):
        if sample.depth == 0 or following is None or peak == 0:
            continue
        height = QUEUE_LANE_H * sample.depth / peak
        x = frame.x(sample.t_ns)
        out.append(
            _svg.rect(
                x=x,
                y=y + QUEUE_LANE_H - height,
                width=max((following.t_ns - sample.t_ns) * frame.scale, MIN_BAR_PX),
                height=height,
                fill=QUEUE_COLOUR,
                class_="queue",
                data_depth=sample.depth,
                data_start_ms=f"{(sample.t_ns - frame.origin) / 1e6:.3f}",
                data_dur_ms=f"{(following.t_ns - sample.t_ns) / 1e6:.3f}",
            )
        )
    out.append("</g>")
    return "".join(out)
