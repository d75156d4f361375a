"""`ServerProcess` against real uvicorn processes: start, answer, stop, fail clearly, no orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loopscope.errors import PortInUseError, ServerDiedError, ServerStartError, UsageError
from loopscope.server import ServerProcess, ServerSettings, free_port

APPS = str(Path(__file__).parents[1] / "apps")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _server_children(parent: int) -> list[int]:
    """Processes whose parent is `parent` and that run loopscope's server target."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.split(")")[-1].split()[1])
        if ppid == parent and b"loopscope.server.target:app" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_started_server_answers_on_loopback_and_stops_cleanly() -> None:
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS))
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        pid = server.pid
        assert pid is not None
        response = httpx.get(server.url + "/", timeout=5)
        assert response.json()["pid"] == pid
    # uvicorn re-raises SIGTERM after its graceful shutdown.
    assert server.returncode in (0, -signal.SIGTERM)
    assert not _alive(pid)
    server.close()


def test_several_workers_all_stop_with_the_server() -> None:
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS, workers=2))
    with server:
        assert server.pid is not None
        deadline = time.monotonic() + 10
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            workers.add(httpx.get(server.url + "/", timeout=5).json()["pid"])
        assert len(workers) == 2, "both workers should have answered"
    assert all(not _alive(pid) for pid in workers)
    server.close()


def test_a_port_in_use_is_reported_with_the_port_number() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS, port=port))
        with pytest.raises(PortInUseError, match=f"Port {port} on 127.0.0.1 is in use"):
            server.start()
    server.close()


def test_an_app_that_fails_to_import_shows_the_log_tail() -> None:
    server = ServerProcess(ServerSettings(app="broken_import:app", app_dir=APPS))
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert "exited with code" in str(info.value)
    assert "this_module_does_not_exist" in info.value.log_tail
    assert server.pid is None or not _alive(server.pid)
    server.close()


def test_a_missing_app_module_is_a_start_error() -> None:
    server = ServerProcess(ServerSettings(app="no_such_module:app", app_dir=APPS))
    with pytest.raises(ServerStartError, match="no_such_module"):
        server.start()
    server.close()


def test_a_server_that_dies_while_measured_is_reported() -> None:
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS))
    with server:
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url + "/die", timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                server.check_alive()
            except ServerDiedError as exc:
                assert "exited with code 3" in str(exc)
                break
            time.sleep(0.05)
        else:
            pytest.fail("the dead server was not noticed")
    server.close()


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    app = tmp_path / "stubborn.py"
    app.write_text(
        "import signal\n"
        "from starlette.applications import Starlette\n"
        "app = Starlette()\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal = lambda *a, **k: None  # uvicorn must not re-install its handler\n"
    )
    server = ServerProcess(
        ServerSettings(app="stubborn:app", app_dir=str(tmp_path), stop_grace_s=1.0)
    )
    server.start()
    pid = server.pid
    assert pid is not None
    started = time.monotonic()
    code = server.stop()
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert not _alive(pid)
    server.close()


def test_bad_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="module:attribute"):
        ServerSettings(app="no-colon")
    with pytest.raises(UsageError, match="threads"):
        ServerSettings(app="a:b", threads=0)


def test_free_port_gives_a_bindable_loopback_port() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_or_a_kill_during_the_demo_leaves_no_server_behind(sig: signal.Signals) -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "demo", "--io-ms", "3000", "--modes", "async-blocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        servers: list[int] = []
        while not servers and time.monotonic() < deadline:
            servers = _server_children(cli.pid)
            time.sleep(0.05)
        assert servers, "the demo never started its server"
        time.sleep(1.0)  # mid-run: requests are in flight
        cli.send_signal(sig)
        # Once failed under load: the CLI gave the server its full 5 s grace, which a blocked
        # loop never uses, and a starved machine added the rest. An interrupted run now gives it
        # 1 s (`INTERRUPT_GRACE_S`); tests/robust/test_no_orphans.py holds the tighter bound.
        cli.wait(timeout=15)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        assert cli.stderr is not None
        cli.stderr.close()
    assert cli.returncode != 0
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in servers)
    assert os.getpgid(0) != servers[0]


@pytest.mark.parametrize("app", ["server_apps:app", "server_apps:no_lifespan"])
def test_the_probe_record_arrives_with_or_without_lifespan_support(app: str) -> None:
    server = ServerProcess(ServerSettings(app=app, app_dir=APPS, probe=True))
    with server:
        response = httpx.get(server.url + "/", headers={"x-loopscope-request": "R1"}, timeout=5)
        assert response.status_code == 200
    (record,) = server.probe_records()
    assert record.request("R1").status == 200
    server.close()


def test_the_port_is_the_one_the_server_said_it_bound() -> None:
    server = ServerProcess(ServerSettings(app="server_apps:app", app_dir=APPS))
    with server:
        logged = server.kind.bound_port(Path(server.log_path.parent))
        assert logged == server.port != 0
        assert httpx.get(server.url + "/", timeout=5).json()["pid"] == server.pid
    server.close()


def test_an_unknown_server_kind_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Unknown server 'tornado'; use one of uvicorn"):
        ServerSettings(app="server_apps:app", server="tornado")
