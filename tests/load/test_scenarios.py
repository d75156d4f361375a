"""Parsing hits and building scenarios: clear errors for bad input."""

from __future__ import annotations

import pytest

from loopscope.errors import UsageError
from loopscope.load import Hit, parse_hit, uniform_scenario, warmup_scenario


def test_a_hit_with_a_json_body_is_parsed() -> None:
    assert parse_hit('POST /login {"username": "u", "n": 1}') == Hit(
        "POST", "/login", {"username": "u", "n": 1}
    )


def test_a_lowercase_method_and_a_query_are_accepted() -> None:
    assert parse_hit("get /items?limit=3") == Hit("GET", "/items?limit=3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GET", "must look like"),
        ("FETCH /x", "unknown method"),
        ("GET x", "must start with '/'"),
        ("POST /x {not json}", "not valid JSON"),
    ],
)
def test_bad_hits_are_usage_errors_that_say_why(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_hit(text)


def test_a_scenario_over_the_request_limit_is_refused() -> None:
    with pytest.raises(UsageError, match="limit"):
        uniform_scenario([Hit("GET", "/")], users=1000, rounds=101)


def test_zero_users_or_rounds_are_refused() -> None:
    with pytest.raises(UsageError):
        uniform_scenario([Hit("GET", "/")], users=0)
    with pytest.raises(UsageError):
        uniform_scenario([Hit("GET", "/")], users=1, rounds=0)


def test_the_warm_up_replays_only_safe_methods_unless_asked() -> None:
    register = Hit("POST", "/auth/register", {"username": "ann"})
    scenario = uniform_scenario(
        [Hit("GET", "/a"), register, Hit("HEAD", "/a"), Hit("GET", "/a")], 3
    )
    safe = warmup_scenario(scenario)
    assert safe is not None
    assert [hits for hits in safe.hits_by_user] == [(Hit("GET", "/a"),), (Hit("HEAD", "/a"),)]
    unsafe = warmup_scenario(scenario, unsafe=True)
    assert unsafe is not None
    assert (register,) in unsafe.hits_by_user and len(unsafe.hits_by_user) == 3


def test_a_scenario_of_posts_only_has_no_warm_up() -> None:
    assert warmup_scenario(uniform_scenario([Hit("POST", "/pay", {"eur": 5})], 2)) is None
