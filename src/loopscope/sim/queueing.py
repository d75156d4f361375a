"""Erlang's C formula: the M/M/c queue that a thread pool under Poisson load is.

The model is checked against it (`tests/sim`, `make bench`): requests arriving at `rate` per
second, each holding one of `servers` tokens for an exponential time of mean `service_s`.
"""

from __future__ import annotations

import math

from loopscope.errors import UsageError


def erlang_c(servers: int, rate: float, service_s: float) -> float:
    """The probability that an arrival has to wait for a server."""
    load = rate * service_s
    if not 0 < load < servers:
        raise UsageError(f"An M/M/c queue needs 0 < rate x service < servers, not {load:g}.")
    # Summed term by term so large `servers` does not overflow a factorial.
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= load / k
        total += term
    last = term * load / servers * servers / (servers - load)
    return last / (total + last)


def mean_wait_s(servers: int, rate: float, service_s: float) -> float:
    """The mean time an arrival waits before a server takes it (Wq)."""
    return erlang_c(servers, rate, service_s) / (servers / service_s - rate)


def check_term(servers: int, rate: float, service_s: float) -> float:
    """`erlang_c` by the textbook formula with factorials, for small `servers` (a cross-check)."""
    a = rate * service_s
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    return top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
