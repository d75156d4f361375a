"""The data layer: a blocking driver call, the kind that hides two calls below a route."""

from __future__ import annotations

import time


def fetch_orders(customer: str) -> list[str]:
    time.sleep(0.12)  # a synchronous database driver waiting on the network
    return [f"{customer}-order-{i}" for i in range(3)]
