"""gunicorn's config hooks for loopscope's servers (`--config python:<this module>`).

A worker of gunicorn's own classes (sync, gthread) notices its arbiter's death only at its next
timeout check, minutes away under the long `--timeout` a bench needs; `post_fork` makes the
kernel end it with the arbiter instead, so a `kill -9` of loopscope leaves no worker behind.
`worker_exit` writes the WSGI probe's record of the worker, where one was installed
(`loopscope.server.gunicorn_wsgi`).
"""

from __future__ import annotations

from typing import Any

from loopscope.server.lifeline import die_with_parent


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn's hook, run in each worker just after the fork."""
    die_with_parent()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's hook, run in each worker as it exits (after its last request)."""
    import sys

    # Only a worker that runs the WSGI probe has imported it; nothing to write otherwise.
    probe = sys.modules.get("loopscope.probe.wsgi")
    if probe is not None:
        probe.save_all()
