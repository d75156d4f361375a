"""The seed's two diagrams under the seed's own assumptions (`loopscope sim --seed-diagrams`).

The seed assumes one process whose main thread accepts requests, one worker thread W, two cores,
and a database process that runs each 1 s DML on the second core; three users send login, info
and history at about the same instant. It draws the blocking version ending at about T4 and the
async one at about T1.5. Here each diagram is a recipe run under exactly those assumptions, next
to the seed's number; a third row adds what FastAPI really does with a `def` route (a second trip
through the pool for response validation).
"""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.sim.recipe import Recipe, parse_items
from loopscope.sim.run import simulate
from loopscope.sim.settings import Load, ServerModel

SEED_DML_MS = 1000.0
ROUTES = ("/login", "/info", "/history")


@dataclass(frozen=True, slots=True)
class SeedDiagram:
    """One diagram: its recipe, the seed's finish time (in units of the 1 s DML, `None` where the
    seed draws none) and the model's finish time of each request, in the same units."""

    key: str
    name: str
    recipe: str
    seed_end: float | None
    finish: tuple[float, ...]

    @property
    def end(self) -> float:
        """When the last request finished, in DML units."""
        return max(self.finish)


# The main thread's share of each request (accept, parse, answer) is small next to the DML; the
# seed draws it as an instant, so it is 1 ms here. The seed's DML is a wait for the requester;
# whether the DB spends it waiting (disk) or computing is not said, so both are run.
DIAGRAMS: tuple[tuple[str, str, str, float | None], ...] = (
    ("blocking", "blocking: one worker thread W", "cpu:1, pool(io:{dml}), cpu:1", 4.0),
    ("async", "async: coroutines on the loop", "cpu:1, await:{dml}, cpu:1", 1.5),
    ("async-db-cpu", "async, each DML 1 s of DB CPU", "cpu:1, adb:{dml}, cpu:1", None),
    (
        "fastapi",
        "blocking as FastAPI runs a def route",
        "cpu:1, pool(io:{dml}), cpu:1, pool(cpu:0.05), cpu:1",
        None,
    ),
)


def seed_diagrams(dml_ms: float = SEED_DML_MS) -> list[SeedDiagram]:
    """Each of the seed's diagrams simulated under its assumptions."""
    server = ServerModel(workers=1, threads=1, cores=2)
    out = []
    for key, name, text, seed_end in DIAGRAMS:
        recipe = text.format(dml=f"{dml_ms:g}")
        recipes = {r: Recipe(route=r, items=parse_items(recipe), method="POST") for r in ROUTES}
        trace = simulate(server, Load(recipes, tuple((r,) for r in ROUTES)))
        finish = tuple(r.done_ns / (dml_ms * 1e6) for r in trace.requests)
        out.append(SeedDiagram(key, name, recipe, seed_end, finish))
    return out
