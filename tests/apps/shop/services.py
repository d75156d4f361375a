"""The service layer: calls the data layer, and does some CPU work of its own."""

from __future__ import annotations

from shop.repo import fetch_orders


def order_report(customer: str) -> dict[str, object]:
    orders = fetch_orders(customer)
    return {"customer": customer, "orders": orders}


def crunch(n: int) -> int:
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1_000_003
    return total
