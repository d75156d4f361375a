"""What-ifs on a recipe: `--change "/orders/{id}=offload"` or `=async`.

- `offload`: the route's loop-blocking steps go to the thread pool. Each `io`/`db` step on the
  loop, with the `cpu` step just before it (the blocking helper's own Python work, such as
  connecting), becomes one `pool(...)` trip — what `await run_in_threadpool(helper)` does.
- `async`: the route's blocking waits become awaits (`io` → `await`, `db` → `adb`), and its pool
  trips come back to the loop: an `async def` endpoint with an async driver.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from loopscope.errors import UsageError
from loopscope.sim.recipe import BLOCKING_KINDS, Item, PoolStep, Recipe, Step

ChangeKind = Literal["offload", "async"]
CHANGES: tuple[ChangeKind, ...] = ("offload", "async")


def parse_change(text: str) -> tuple[str, ChangeKind]:
    """`"/orders/{id}=offload"` → `("/orders/{id}", "offload")`."""
    route, sep, kind = text.rpartition("=")
    kind = kind.strip()
    if not sep or not route.strip().startswith("/") or kind not in CHANGES:
        raise UsageError(
            f"--change {text!r} must look like '/orders/{{id}}=offload' or '/orders/{{id}}=async'."
        )
    return route.strip(), kind


def offload(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """`items` with every loop-blocking stretch moved into one `pool(...)` trip."""
    out: list[Item] = []
    trip: list[Step] = []
    for item in items:
        if isinstance(item, Step) and item.kind in BLOCKING_KINDS:
            if not trip and out and isinstance(out[-1], Step) and out[-1].kind == "cpu":
                trip.append(out.pop())  # type: ignore[arg-type]
            trip.append(item)
            continue
        if trip:
            out.append(PoolStep("pool", tuple(trip)))
            trip = []
        out.append(item)
    if trip:
        out.append(PoolStep("pool", tuple(trip)))
    return tuple(out)


def make_async(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """`items` with blocking waits awaited and pool trips run on the loop."""
    flat: list[Step] = []
    for item in items:
        flat.extend(item.steps if isinstance(item, PoolStep) else (item,))
    swap = {"io": "await", "db": "adb"}
    return tuple(Step(swap.get(s.kind, s.kind), s.ms) for s in flat)  # type: ignore[arg-type]


def apply_change(recipes: dict[str, Recipe], text: str) -> dict[str, Recipe]:
    """`recipes` with the change `text` made; an unknown route or a no-op is a `UsageError`."""
    route, kind = parse_change(text)
    if route not in recipes:
        raise UsageError(
            f"--change names {route!r}, which is not among the routes: {', '.join(recipes)}."
        )
    recipe = recipes[route]
    items = offload(recipe.items) if kind == "offload" else make_async(recipe.items)
    if items == recipe.items:
        what = "blocks the loop" if kind == "offload" else "waits blockingly"
        raise UsageError(f"--change {text!r} changes nothing: no step of {route} {what}.")
    return {**recipes, route: replace(recipe, items=items)}
