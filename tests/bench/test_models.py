"""Server models: names, the settings they run with, and their capacity from the model."""

from __future__ import annotations

import pytest

from loopscope.errors import UsageError
from loopscope.report.words import capacity_text
from loopscope.server import ServerProcess
from loopscope.server.models import parse_model, parse_models


def test_models_parse_with_workers_and_threads() -> None:
    models = parse_models("uvicorn:2, gunicorn-sync:4,gunicorn-gthread:2x8,gunicorn-uvicorn")
    assert [m.name for m in models] == [
        "uvicorn:2",
        "gunicorn-sync:4",
        "gunicorn-gthread:2x8",
        "gunicorn-uvicorn:1",
    ]
    gthread = models[2].settings(io_ms=100)
    assert (gthread.server, gthread.workers, gthread.threads) == ("gunicorn-gthread", 2, 8)


@pytest.mark.parametrize("spec", ["nginx:1", "uvicorn:0", "uvicorn:x", "gunicorn-sync:1x", ""])
def test_unknown_or_malformed_models_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_models(spec)


def test_a_wsgi_model_serves_only_blocking_and_takes_the_wsgi_probe() -> None:
    model = parse_model("gunicorn-sync:2")
    assert list(model.modes) == ["blocking"]
    settings = model.settings(io_ms=10, probe=True)
    assert settings.probe is True
    # The WSGI probe wraps the app in each worker; unprobed, gunicorn runs the app itself.
    process = ServerProcess(settings)
    try:
        assert "loopscope.server.gunicorn_wsgi:app" in process.command()
        plain = ServerProcess(model.settings(io_ms=10))
        assert "loopscope.demo.wsgi:create_wsgi_app()" in plain.command()
        plain.close()
    finally:
        process.close()
    assert not parse_model("granian:1").probe_able
    with pytest.raises(UsageError):
        model.check_mode("async")


@pytest.mark.parametrize(
    ("spec", "mode", "max_rps"),
    [
        ("gunicorn-sync:2", "blocking", 20.0),
        ("gunicorn-gthread:2x4", "blocking", 80.0),
        ("uvicorn:1", "async-blocking", 10.0),
        ("uvicorn:2", "blocking", 800.0),  # 2 workers x 40 thread-pool tokens
        ("gunicorn-uvicorn:3", "async-blocking", 30.0),
        ("uvicorn:1", "async", None),
    ],
)
def test_capacity_comes_from_the_model(spec: str, mode: str, max_rps: float | None) -> None:
    assert parse_model(spec).capacity(mode).max_rps(100) == max_rps


def test_the_capacity_is_explained_with_its_arithmetic() -> None:
    capacity = parse_model("gunicorn-sync:2").capacity("blocking")
    words = capacity_text(
        "gunicorn-sync:2", "blocking", capacity.slots, capacity.holder, capacity.queue, 100
    )
    assert "2 workers" in words
    assert "serves at most 2 / 0.1 s = 20 req/s; past that the accept queue grows" in words
