"""The colours and words for each state, shared by the timeline, its legend and the tables.

Colours are the Okabe–Ito palette, which stays distinguishable with every common colour-vision
deficiency; what the eye should find first (the loop blocked, a wait for a token) gets the
strongest hues, the harmless waits the palest.
"""

from __future__ import annotations

from loopscope.trace.model import State

STATE_COLOURS: dict[State, str] = {
    "queued": "#999999",  # grey: not yet the app's business
    "on-loop": "#0072B2",  # blue: a coroutine running
    "awaiting": "#56B4E9",  # sky blue: suspended, the loop is free
    "ready": "#F0E442",  # yellow: woken, waiting its turn
    "loop-blocked": "#D55E00",  # vermillion: nobody else can run
    "pool-wait": "#CC79A7",  # reddish purple: waiting for a thread-pool token
    "in-thread": "#009E73",  # bluish green: running in a worker thread
}
"""Fill colour of each state."""

STATE_LABELS: dict[State, str] = {
    "queued": "accept queue",
    "on-loop": "running on the loop",
    "awaiting": "awaiting (loop free)",
    "ready": "ready, waiting for the loop",
    "loop-blocked": "blocking the loop",
    "pool-wait": "waiting for a pool thread (a token, or the hand-off)",
    "in-thread": "in a worker thread",
}
"""Each state in the seed's words, for legends and table rows."""

CLIENT_COLOUR = "#444444"
"""The hairline of a request in flight as the client saw it (send → done)."""

MAKESPAN_COLOUR = "#000000"
"""The line marking the moment the last response arrived."""
