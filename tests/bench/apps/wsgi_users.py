"""A small Flask app for the WSGI probe's tests: a route with a variable (its template is not
its path), one that fails, and a wait of `WSGI_USERS_SLEEP_MS` per request."""

from __future__ import annotations

import os
import time

from flask import Flask


def create_app() -> Flask:
    app = Flask("wsgi_users")
    sleep_s = float(os.environ.get("WSGI_USERS_SLEEP_MS", "0")) / 1000

    @app.get("/users/<int:uid>")
    def user(uid: int) -> dict[str, int]:
        time.sleep(sleep_s)
        return {"uid": uid}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    return app
