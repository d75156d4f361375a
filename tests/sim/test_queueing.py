"""The model under Poisson load agrees with Erlang's C formula for an M/M/c thread pool."""

from __future__ import annotations

import statistics

import pytest

from loopscope.sim import Load, ServerModel, parse_route, simulate
from loopscope.sim.queueing import check_term, erlang_c, mean_wait_s


def test_erlang_c_matches_the_textbook_formula() -> None:
    for servers, rate, service in ((1, 5.0, 0.1), (4, 30.0, 0.1), (10, 70.0, 0.12)):
        assert erlang_c(servers, rate, service) == pytest.approx(check_term(servers, rate, service))
    # M/M/1: the chance to wait is the utilisation.
    assert erlang_c(1, 5.0, 0.1) == pytest.approx(0.5)


def test_a_pool_of_c_tokens_under_poisson_load_waits_as_erlang_c_predicts() -> None:
    servers, rate, service_ms = 4, 30.0, 100.0
    recipe = parse_route(f"/q=pool(io:{service_ms:g})")
    load = Load({"/q": recipe}, (("/q",),), rate=rate, duration_s=800.0, seed=7)
    trace = simulate(ServerModel(threads=servers, exponential=True), load)
    waits = [
        sum(s.duration_ns for s in r.segments if s.state == "pool-wait") / 1e9
        for r in trace.requests
    ]
    assert len(waits) > 20_000
    # Batch means: consecutive waits are correlated, batches of 1,000 nearly are not.
    batches = [statistics.fmean(waits[i : i + 1000]) for i in range(0, len(waits) - 999, 1000)]
    error = statistics.stdev(batches) / len(batches) ** 0.5
    expected = mean_wait_s(servers, rate, service_ms / 1000)
    assert abs(statistics.fmean(waits) - expected) < 4 * error
    waited = sum(w > 0 for w in waits) / len(waits)
    assert waited == pytest.approx(erlang_c(servers, rate, service_ms / 1000), abs=0.03)


def test_the_same_seed_gives_the_same_open_loop_run_and_another_seed_another() -> None:
    recipe = parse_route("/q=cpu:1, pool(io:50), cpu:1")

    def run(seed: int) -> list[int]:
        load = Load({"/q": recipe}, (("/q",),), rate=40.0, duration_s=5.0, seed=seed)
        return [r.client_done_ns for r in simulate(ServerModel(), load).requests]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert 150 < len(run(3)) < 250
