"""The seed's diagrams under its own assumptions: what they give, next to what the seed says."""

from __future__ import annotations

import pytest

from loopscope.sim.seed import seed_diagrams


def test_the_seeds_diagrams_give_t3_for_blocking_and_t1_for_async() -> None:
    rows = {d.key: d for d in seed_diagrams()}
    assert rows["blocking"].finish == pytest.approx((1, 2, 3), abs=0.01)
    assert rows["blocking"].seed_end == 4.0
    assert rows["async"].finish == pytest.approx((1, 1, 1), abs=0.01)
    assert rows["async"].seed_end == 1.5
    # Two cores run two CPU-bound DMLs at once; FastAPI's second trip ends all three at T3.
    assert sorted(rows["async-db-cpu"].finish) == pytest.approx([1, 1, 2], abs=0.01)
    assert rows["fastapi"].finish == pytest.approx((3, 3, 3), abs=0.02)
