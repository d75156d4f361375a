"""The demo's five modes as built-in recipes (`loopscope sim --mode M`).

Each is the demo app's route as the probe sees it, in steps. The times are medians that
`loopscope sim --from` fitted from a 3-user demo trace at `--io-ms 200` on a 2-core machine
(rounded; `io` is the seed's DML and follows `--io-ms`):

- every request starts with time on the loop (accepting, parsing, validating the body) and ends
  with a little more (serialising the answer); `login` also verifies a scrypt hash (~2.5 ms),
  written `db:` because `hashlib.scrypt` releases the GIL: it holds its thread and a core, not
  the GIL;
- that start is 0.4 ms where the route's own code runs in a thread (`blocking`, `single-thread`,
  `offload`), as fitted from demo traces at 60 users (0.35 and 0.40 ms). A 3-user trace gives
  ~1.5 ms, since a loop that wakes for each request alone pays its turn's costs per request, and
  2 ms there made the model slow by 120–200 ms at 60–100 users, where the starts queue on the
  loop one after another (the agreement grid, docs/sim.md). In `async` and `async-blocking` the
  start also runs the route's code up to its first wait (opening the aiosqlite connection starts
  a thread). In `async` it is 1 ms, the median fit of eight demo traces at 60–100 users on a
  quiet machine (0.8–1.5 ms; 1.3–2.5 at 3 users): the 2 ms of a 3-user fit, 120–200 ms of loop
  at 60–100 users, made the model ×1.25–1.5 slow there (docs/sim.md). `async-blocking` keeps
  2 ms: its loop is blocked by the DML anyway;
- `blocking`: the `def` endpoint runs in anyio's pool, then its response validation takes a second
  trip — the reason one token (`single-thread`) ends all three requests together at T3;
  `await:0` are anyio's checkpoints, where the task gives the loop up before taking a token;
- `async-blocking`: everything in one run on the loop, `io` included: the loop is blocked;
- `async`: `await` for the sleep; aiosqlite's calls run in its own thread per connection
  (`thread(...)`: connecting, then executing, fetching and closing, ~1.3 ms after the sleep),
  written `db:` because `sqlite3` releases the GIL around its C calls (opening, preparing,
  stepping, closing): at 60–100 users, modelled as holding the GIL, they queued the loop and
  made the model ×1.33–1.66 slow on a quiet machine (×1.07–1.32 as `db:`);
- `offload`: one trip through the pool for the blocking helper, the rest on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.errors import UsageError
from loopscope.sim.recipe import Item, PoolStep, Recipe, Step, parse_items
from loopscope.sim.settings import Load, ServerModel
from loopscope.trace.model import Run, Trace

ACTIONS = ("login", "info", "history")
VERIFY_MS = 2.5
"""scrypt verification of the login password (the demo's `verify_password`)."""


@dataclass(frozen=True, slots=True)
class BuiltinMode:
    """A demo mode: the route variant, its recipe (`{io}` and `{verify}` filled in per action)
    and the thread tokens it forces (the seed's one worker thread W), if any."""

    variant: str
    recipe: str
    threads: int | None = None


_BLOCKING = (
    "cpu:0.4, await:0, cpu:0.1, await:0, cpu:0.1, pool(db:{verify}, cpu:0.6, io:{io}), "
    "cpu:0.2, await:0, cpu:0.05, await:0, cpu:0.15, pool(cpu:0.03), cpu:0.3"
)

MODES: dict[str, BuiltinMode] = {
    "blocking": BuiltinMode("blocking", _BLOCKING),
    "single-thread": BuiltinMode("blocking", _BLOCKING, threads=1),
    "async-blocking": BuiltinMode(
        "async-blocking", "cpu:2, cpu:0.6, io:{io}, db:{verify}, cpu:0.3"
    ),
    "async": BuiltinMode(
        "async",
        "cpu:1, thread(db:1), cpu:0.02, await:{io}, cpu:0.05, thread(db:0.5), cpu:0.1, "
        "thread(db:0.3), cpu:0.05, thread(db:0.5), db:{verify}, cpu:0.3",
    ),
    "offload": BuiltinMode(
        "offload",
        "cpu:0.4, await:0, cpu:0.08, await:0, cpu:0.08, pool(cpu:0.6, io:{io}), db:{verify}, "
        "cpu:0.4",
    ),
}

CLIENT = {"client_ms": 0.3, "send_ms": 4.5, "reply_ms": 1.0}
"""The load driver's own times on the machine the recipes were fitted on (see `ServerModel`):
`client_ms` is the median spacing of its users' first sends over 19 demo runs at 10–100 users
in every mode on a quiet machine (0.29; 0.15–0.56). An earlier fit on a busy machine gave 0.8,
which alone put 50–80 ms of sending before a 60–100-user burst that takes 20–55 ms measured."""


def mode_recipes(mode: str, io_ms: float) -> dict[str, Recipe]:
    """The three routes of `mode` with the DML taking `io_ms`."""
    if mode not in MODES:
        raise UsageError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    if not io_ms >= 0:
        raise UsageError(f"--io-ms must not be negative, not {io_ms}.")
    spec = MODES[mode]
    recipes = {}
    for action in ACTIONS:
        route = f"/{action}/{spec.variant}"
        verify = VERIFY_MS if action == "login" else 0
        text = spec.recipe.format(io=f"{io_ms:g}", verify=f"{verify:g}")
        # A zero step (no password to verify) is left out, so the recipe reads as it runs.
        items = tuple(_drop_zero(i) for i in parse_items(text) if not _zero(i))
        recipes[route] = Recipe(route=route, items=items, method="POST")
    return recipes


def _zero(item: Item) -> bool:
    return isinstance(item, Step) and item.kind in ("cpu", "db") and item.ms == 0


def _drop_zero(item: Item) -> Item:
    if isinstance(item, PoolStep):
        return PoolStep(item.kind, tuple(s for s in item.steps if not _zero(s)))
    return item


def mode_model(
    mode: str, users: int = 3, io_ms: float = 1000.0, threads: int = 40, **server: object
) -> tuple[ServerModel, Load]:
    """The seed's experiment in `mode`: user `i` sends login, info or history (`i mod 3`)."""
    recipes = mode_recipes(mode, io_ms)
    routes = list(recipes)
    hits = tuple((routes[i % 3],) for i in range(users))
    settings: dict[str, object] = {**CLIENT, **server}
    model = ServerModel(threads=MODES[mode].threads or threads, **settings)  # type: ignore[arg-type]
    return model, Load(recipes=recipes, hits_by_user=hits, io_ms=io_ms)


def simulate_like(measured: Run) -> Trace:
    """The built-in model of a measured demo run: same mode, users, I/O time and tokens."""
    from loopscope.sim.run import simulate

    if measured.mode not in MODES:
        raise UsageError(f"There is no built-in model of mode {measured.mode!r}.")
    server, load = mode_model(
        measured.mode,
        users=max(1, measured.users),
        io_ms=measured.io_ms if measured.io_ms is not None else 1000.0,
        threads=measured.threads or 40,
    )
    return simulate(server, load, mode=measured.mode, app=measured.app)
