"""The seed's users service as a WSGI app (Flask), for the sync server models.

The same three routes as the FastAPI app's `blocking` variant (`/login/blocking`,
`/info/blocking`, `/history/blocking`), over the same SQLite store and the seed's blocking
helper (`UserStore.get_user_from_db`: a fresh connection, `time.sleep`, a `SELECT`). Under
gunicorn's sync workers this is literally the seed's first picture: an accept queue feeding W
workers, each busy for the whole request.

Run it as `gunicorn 'loopscope.demo.wsgi:create_wsgi_app()'`; settings come from the environment
(`DemoSettings`), as for the ASGI app.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from loopscope.demo.db import UserRow, UserStore, create_users_db
from loopscope.demo.passwords import verify_password
from loopscope.demo.settings import DemoSettings

WSGI_VARIANT = "blocking"
"""The one variant a WSGI app has: every request holds its worker (thread) until it is done."""

_MAX_NAME = 64
_MAX_PASSWORD = 128


def _field(body: Any, name: str, limit: int) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        abort(422, description=f"{name!r} must be a string of 1 to {limit} characters")
    return value


def _found(user: UserRow | None) -> UserRow:
    if user is None:
        abort(404, description="User not found")
    return user


def create_wsgi_app(settings: DemoSettings | None = None) -> Flask:
    """The users service as a Flask app. With no `settings`, they are read from the environment.

    Each process that calls this creates its own database in a temporary directory (unless
    `settings.db_path` names one), kept as long as the app lives.
    """
    settings = settings or DemoSettings.from_env()
    app = Flask("loopscope.demo.wsgi")
    if settings.db_path is None:
        workdir = tempfile.TemporaryDirectory(prefix="loopscope-demo-wsgi-")
        app.extensions["loopscope_db_dir"] = workdir  # lives (and is removed) with the app
        path = Path(workdir.name) / "users.db"
    else:
        path = settings.db_path
    create_users_db(path, settings.users)
    store = UserStore(path=path, io_s=settings.io_ms / 1000)

    @app.errorhandler(HTTPException)
    def as_json(error: HTTPException) -> ResponseReturnValue:
        # FastAPI's shape, `{"detail": ...}`, so both apps answer a client alike.
        return jsonify(detail=error.description), error.code or 500

    @app.post(f"/login/{WSGI_VARIANT}")
    def login_blocking() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        username = _field(body, "username", _MAX_NAME)
        password = _field(body, "password", _MAX_PASSWORD)
        user = store.get_user_from_db(username)
        if user is None or not verify_password(user[1], password):
            abort(401, description="Invalid credentials")
        return jsonify(message=f"Welcome, {username}!")

    @app.post(f"/info/{WSGI_VARIANT}")
    def info_blocking() -> ResponseReturnValue:
        user = _found(store.get_user_from_db(_field(request.get_json(silent=True), "username", 64)))
        return jsonify(username=user[0], info=user[2])

    @app.post(f"/history/{WSGI_VARIANT}")
    def history_blocking() -> ResponseReturnValue:
        user = _found(store.get_user_from_db(_field(request.get_json(silent=True), "username", 64)))
        return jsonify(username=user[0], history=user[3])

    return app
