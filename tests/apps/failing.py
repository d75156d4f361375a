"""A FastAPI app with one raising handler and one healthy POST route (issue 10, defects 5 and 6).

uvicorn closes a keep-alive connection after an unhandled exception; a client that reuses it
for the next POST gets "connection reset", which must never show as `/echo`'s failure.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


def charge(amount: int) -> int:
    raise RuntimeError(f"card declined for {amount}")  # the line the report must name


@app.get("/boom")
async def boom() -> dict[str, int]:
    return {"charged": charge(42)}


@app.post("/echo")
async def echo(body: dict[str, Any]) -> dict[str, Any]:
    return body


@app.get("/ok")
async def ok() -> dict[str, str]:
    return {"ok": "yes"}


async def answer_then_raise(scope: Any, receive: Any, send: Any) -> None:
    """Answers 200 in full, then raises: uvicorn logs it and closes the connection, and this
    time no 5xx warns the client."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"fine"})
    raise RuntimeError("after the answer")


app.mount("/answer-then-raise", answer_then_raise)
