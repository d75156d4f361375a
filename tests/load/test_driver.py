"""The load driver against a real server: ids, stamps, the barrier, and no client-side cap."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.errors import LoadError
from loopscope.load import Hit, run_load, seed_scenario, uniform_scenario
from loopscope.server import ServerProcess, ServerSettings, free_port

APPS = str(Path(__file__).parents[1] / "apps")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS))
    with server:
        yield server
    server.close()


def test_every_request_carries_its_id_and_is_stamped_in_order(server: ServerProcess) -> None:
    scenario = uniform_scenario([Hit("GET", "/nap?ms=10"), Hit("POST", "/echo", {"a": 1})], 3, 2)
    requests = asyncio.run(run_load(server.url, scenario))
    assert [r.id for r in requests] == [f"R{i}" for i in range(1, 13)]
    for r in requests:
        assert r.status == 200
        assert r.error is None
        assert r.client_first_byte_ns is not None
        assert r.client_send_ns <= r.client_first_byte_ns <= r.client_done_ns
        assert r.size is not None and r.size > 0
    # One user's requests go one after another.
    by_user: dict[int | None, list[int]] = {}
    for r in requests:
        by_user.setdefault(r.user, []).append(r.client_send_ns)
    assert all(times == sorted(times) for times in by_user.values())


def test_all_users_are_released_at_the_same_instant(server: ServerProcess) -> None:
    requests = asyncio.run(run_load(server.url, uniform_scenario([Hit("GET", "/nap?ms=50")], 30)))
    sends = [r.client_send_ns for r in requests]
    assert (max(sends) - min(sends)) / 1e6 < 50


def test_two_hundred_concurrent_requests_are_not_capped_by_the_client(
    server: ServerProcess,
) -> None:
    # httpx's default pool of 100 connections would make half of them take two naps or more.
    # A lone connection whose SYN the kernel dropped under load is retried a second later: a
    # few such stragglers are the machine's, not the client's cap.
    requests = asyncio.run(
        run_load(server.url, uniform_scenario([Hit("GET", "/nap?ms=1000")], 200))
    )
    assert all(r.status == 200 for r in requests)
    start = min(r.sent_ns for r in requests)
    in_one_nap = [r for r in requests if (r.done_ns - start) / 1e9 < 1.75]
    assert len(in_one_nap) >= 190, sorted((r.done_ns - start) / 1e9 for r in requests)[-12:]


def test_the_seed_scenario_sends_login_info_history_in_turn() -> None:
    scenario = seed_scenario("async", users=4)
    paths = [hits[0].path for hits in scenario.hits_by_user]
    assert paths == ["/login/async", "/info/async", "/history/async", "/login/async"]
    assert scenario.hits_by_user[0][0].json_body == {"username": "user0", "password": "password0"}
    assert scenario.hits_by_user[1][0].json_body == {"username": "user1"}


def test_an_unreachable_server_is_a_load_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LoadError, match="None of the 2 requests"):
        asyncio.run(run_load(url, uniform_scenario([Hit("GET", "/")], 2)))


def test_a_dead_request_is_kept_with_its_error(server: ServerProcess) -> None:
    scenario = uniform_scenario([Hit("GET", "/nap?ms=10"), Hit("GET", "/nap?ms=3000")], 1)
    scenario = type(scenario)(scenario.name, scenario.hits_by_user, request_timeout_s=0.5)
    requests = asyncio.run(run_load(server.url, scenario))
    assert requests[0].status == 200
    assert requests[1].status is None
    assert requests[1].error == "no answer within 0.5 s"


@pytest.fixture(scope="module")
def failing_server() -> Iterator[ServerProcess]:
    server = ServerProcess(ServerSettings(app="failing:app", app_dir=APPS))
    with server:
        yield server
    server.close()


def test_a_post_after_a_500_on_the_same_connection_gets_its_own_answer(
    failing_server: ServerProcess,
) -> None:
    # Starlette answers the raising handler's 500 and uvicorn then closes the connection,
    # without `Connection: close`: reusing it would fail the healthy POST.
    scenario = uniform_scenario([Hit("GET", "/boom"), Hit("POST", "/echo", {"a": 1})], 3, 3)
    requests = asyncio.run(run_load(failing_server.url, scenario))
    boom = [r for r in requests if r.route == "/boom"]
    echo = [r for r in requests if r.route == "/echo"]
    assert [r.status for r in boom] == [500] * 9
    assert [(r.status, r.error) for r in echo] == [(200, None)] * 9


def test_a_post_on_a_connection_the_server_closed_silently_is_sent_again_on_a_fresh_one(
    failing_server: ServerProcess,
) -> None:
    # Here the answer is a 200: only the retry on a fresh connection saves the next POST.
    scenario = uniform_scenario(
        [Hit("GET", "/answer-then-raise"), Hit("POST", "/echo", {"a": 1})], 2, 3
    )
    requests = asyncio.run(run_load(failing_server.url, scenario))
    assert [(r.status, r.error) for r in requests] == [(200, None)] * 12
    for r in requests:
        assert r.client_first_byte_ns is not None
        assert r.client_send_ns <= r.client_first_byte_ns <= r.client_done_ns
