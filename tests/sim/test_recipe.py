"""Recipes as users write them: steps, pool trips, and clear errors for the rest."""

from __future__ import annotations

import pytest

from loopscope.errors import UsageError
from loopscope.sim.recipe import PoolStep, Step, parse_items, parse_route


def test_a_recipe_reads_steps_and_pool_trips_in_order() -> None:
    items = parse_items("cpu:2, pool(io:50, cpu:1), await:3.5, executor(db:4)")
    assert items == (
        Step("cpu", 2),
        PoolStep("pool", (Step("io", 50), Step("cpu", 1))),
        Step("await", 3.5),
        PoolStep("executor", (Step("db", 4),)),
    )


def test_a_recipe_prints_back_as_the_text_it_was_read_from() -> None:
    text = "cpu:2, pool(io:50, cpu:1), await:3.5"
    assert str(parse_route(f"/orders/{{id}}={text}")) == text


def test_a_route_option_takes_an_optional_method() -> None:
    recipe = parse_route("POST /orders/{id}=cpu:2,io:50")
    assert (recipe.method, recipe.route) == ("POST", "/orders/{id}")
    assert parse_route("/x=cpu:1").method == "GET"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/x=cpu", "cannot read 'cpu'"),
        ("/x=spin:3", "cannot read 'spin:3'"),
        ("/x=cpu:-1", "negative"),
        ("/x=io:abc", "cannot read"),
        ("/x=pool(io:3", "never closed"),
        ("/x=io:3)", "no matching"),
        ("/x=pool(await:3)", "cannot await"),
        ("/x=pool()", "at least one step"),
        ("/x=", "no steps"),
        ("orders=cpu:1", "must look like"),
        ("/x cpu:1", "must look like"),
    ],
)
def test_a_bad_recipe_is_one_usage_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_route(text)
