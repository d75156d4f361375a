"""What the load sends: hits (one HTTP request each), users, rounds, and the seed's scenario."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loopscope.errors import UsageError

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
"""Methods that must not change the app's state (RFC 9110 §9.2.1): only these are warmed up
unless asked, because replaying a register or a payment would change what is measured."""
SEED_ACTIONS = ("login", "info", "history")


@dataclass(frozen=True, slots=True)
class Hit:
    """One request to send: method, path (with query), and an optional JSON body."""

    method: str
    path: str
    json_body: Any = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """`users` users start at the same instant; user `u` sends `hits_by_user[u]` in order,
    `rounds` times over. Every request is bounded by `request_timeout_s`."""

    name: str
    hits_by_user: tuple[tuple[Hit, ...], ...]
    rounds: int = 1
    request_timeout_s: float = 120.0
    max_requests: int = 100_000

    def __post_init__(self) -> None:
        if not self.hits_by_user or any(not hits for hits in self.hits_by_user):
            raise UsageError("A scenario needs at least one user with at least one hit.")
        if self.rounds < 1:
            raise UsageError(f"rounds must be at least 1, not {self.rounds}.")
        if self.total_requests > self.max_requests:
            raise UsageError(
                f"The scenario sends {self.total_requests} requests; the limit is "
                f"{self.max_requests}. Lower --users or --rounds."
            )

    @property
    def users(self) -> int:
        """How many users send at once."""
        return len(self.hits_by_user)

    @property
    def total_requests(self) -> int:
        """How many requests the scenario sends in all."""
        return self.rounds * sum(len(hits) for hits in self.hits_by_user)


def warmup_scenario(scenario: Scenario, unsafe: bool = False) -> Scenario | None:
    """The first hit to each distinct method and path of `scenario`, all sent at once; only
    hits with a safe method (`SAFE_METHODS`) unless `unsafe`. `None` when there is none.

    It primes the server's lazy first-request work (imports, schema building) so that the
    measurement sees the steady state.
    """
    first: dict[tuple[str, str], Hit] = {}
    for hits in scenario.hits_by_user:
        for hit in hits:
            if unsafe or hit.method in SAFE_METHODS:
                first.setdefault((hit.method, hit.path), hit)
    if not first:
        return None
    return Scenario(
        name="warm-up",
        hits_by_user=tuple((hit,) for hit in first.values()),
        request_timeout_s=scenario.request_timeout_s,
    )


def parse_hit(text: str) -> Hit:
    """Parse `"GET /path"` or `"POST /path {json}"` into a `Hit`."""
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise UsageError(f"Hit {text!r} must look like 'GET /path' or 'POST /path {{json}}'.")
    method, path = parts[0].upper(), parts[1]
    if method not in METHODS:
        raise UsageError(f"Hit {text!r}: unknown method {parts[0]!r}; use one of {METHODS}.")
    if not path.startswith("/"):
        raise UsageError(f"Hit {text!r}: the path must start with '/'.")
    body: Any = None
    if len(parts) == 3:
        try:
            body = json.loads(parts[2])
        except json.JSONDecodeError as exc:
            raise UsageError(f"Hit {text!r}: the body is not valid JSON ({exc.msg}).") from exc
    return Hit(method, path, body)


def uniform_scenario(hits: list[Hit], users: int, rounds: int = 1, name: str = "") -> Scenario:
    """Every one of `users` users sends the same `hits` in order, `rounds` times."""
    if users < 1:
        raise UsageError(f"users must be at least 1, not {users}.")
    return Scenario(
        name=name or f"{users} users x {rounds} rounds of {len(hits)} hits",
        hits_by_user=tuple(tuple(hits) for _ in range(users)),
        rounds=rounds,
    )


def seed_scenario(variant: str, users: int = 3, passwords: list[str] | None = None) -> Scenario:
    """The seed's experiment: user `i` sends login, info or history (`i mod 3`) for `user<i>`.

    `passwords[i]` is user `i`'s password (the demo's `password<i>` by default).
    """
    if users < 1:
        raise UsageError(f"users must be at least 1, not {users}.")
    hits = []
    for i in range(users):
        action = SEED_ACTIONS[i % 3]
        body: dict[str, str] = {"username": f"user{i}"}
        if action == "login":
            body["password"] = passwords[i] if passwords else f"password{i}"
        hits.append((Hit("POST", f"/{action}/{variant}", body),))
    return Scenario(
        name=f"the seed's: {users} users send login/info/history at once",
        hits_by_user=tuple(hits),
    )
