"""Run a server in its own process: start, wait until it answers, stop, keep the log.

The kind of server (uvicorn today; more behind `loopscope.server.kinds.SERVER_KINDS`) builds the
command line; `ServerProcess` runs any of them on the app `loopscope.server.target:app`. It lets
the server pick a free port itself (port 0) and reads the port from what the server logged, so the
server that answers is known to be ours.

The server is a child in its own session (process group), so stopping it reaches every worker,
and a Ctrl-C in the terminal reaches loopscope first, which then stops the server in order:
SIGTERM (uvicorn's graceful shutdown, after which the probe writes its records), then SIGKILL
after a grace period. However loopscope itself ends (`kill -9` included), the kernel kills the
server with it (`loopscope.server.lifeline`); an `atexit` hook stays as a second defence.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from loopscope.errors import (
    PortInUseError,
    ServerDiedError,
    ServerStartError,
    UsageError,
)
from loopscope.server import lifeline, target
from loopscope.server.facts import read_workers
from loopscope.server.kinds import SERVER_KINDS, SERVER_LOG, server_kind
from loopscope.server.ports import LOOPBACK, ensure_port_free, is_listening
from loopscope.trace.constants import DEFAULT_BLOCK_MS
from loopscope.trace.model import WorkerLife
from loopscope.trace.record import ServerRecord
from loopscope.trace.record_files import read_records

LoopName = Literal["auto", "asyncio", "uvloop"]
"""The event loop to ask uvicorn for; `auto` leaves the choice to uvicorn (uvloop when it is
installed), as `uvicorn` without `--loop` does."""
HttpName = Literal["auto", "h11", "httptools"]
"""The HTTP protocol to ask uvicorn for; `auto` is httptools when it is installed."""

_LOG_TAIL_LINES = 25
# An interrupted run keeps nothing the server would write in a graceful stop (the probe's
# record): it gets this long to run its shutdown, then is killed. A grace of seconds spent on a
# server whose loop is blocked, plus a starved machine's own delays, once made a Ctrl-C take
# more than 15 s.
INTERRUPT_GRACE_S = 1.0


@dataclass(slots=True)
class ServerSettings:
    """How to run one server. `app` is an import string such as `pkg.module:app`.

    `threads` sets the thread pool's token count (anyio's default is 40); `probe` installs
    loopscope's probe in every worker, recording loop blocks longer than `block_ms`; `cpus` pins
    the server to those cores (with `taskset`), as capacity measurements need.
    """

    app: str
    server: str = "uvicorn"
    app_dir: str | None = None
    factory: bool = False
    host: str = LOOPBACK
    port: int | None = None
    loop: LoopName = "asyncio"
    http: HttpName = "h11"
    workers: int = 1
    threads: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    probe: bool = False
    block_ms: float = DEFAULT_BLOCK_MS
    cpus: tuple[int, ...] | None = None
    start_timeout_s: float = 30.0
    stop_grace_s: float = 5.0

    def __post_init__(self) -> None:
        if ":" not in self.app:
            raise UsageError(f"App {self.app!r} must look like 'module:attribute'.")
        if self.workers < 1:
            raise UsageError(f"workers must be at least 1, not {self.workers}.")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be at least 1, not {self.threads}.")
        if self.block_ms <= 0:
            raise UsageError(f"block_ms must be positive, not {self.block_ms}.")
        if self.server not in SERVER_KINDS:
            raise UsageError(
                f"Unknown server {self.server!r}; use one of {', '.join(SERVER_KINDS)}."
            )
        if self.start_timeout_s <= 0:
            raise UsageError(f"The start timeout must be positive, not {self.start_timeout_s}.")


class ServerProcess:
    """A server in a child process; use it as a context manager.

    ```
    with ServerProcess(ServerSettings(app="loopscope.demo:create_app", factory=True)) as server:
        ...  # send requests to server.url
    server.probe_records()  # what the probe wrote, once the server has stopped
    ```
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.kind = server_kind(settings.server)
        self.port = settings.port or 0
        self._workdir = tempfile.TemporaryDirectory(prefix="loopscope-server-")
        self.log_path = Path(self._workdir.name) / SERVER_LOG
        self.probe_dir = Path(self._workdir.name) / "probe"
        self.workers_dir = Path(self._workdir.name) / "workers"
        self._proc: subprocess.Popen[bytes] | None = None
        self._runs_target = False
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:41234`."""
        return f"http://{self.settings.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The command line this server runs (pinned to `cpus` with `taskset` if set)."""
        s = self.settings
        pin = ["taskset", "-c", ",".join(map(str, s.cpus))] if s.cpus else []
        return [*pin, *self.kind.command(s, self.port, Path(self._workdir.name))]

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, the user's extras, and the target's settings."""
        s = self.settings
        env = {**os.environ, **self.kind.environment(s), **s.env}
        env.update({target.ENV_APP: s.app, target.ENV_LOOP: s.loop})
        env["PYTHONUNBUFFERED"] = "1"
        self.workers_dir.mkdir(exist_ok=True)
        env[target.ENV_WORKERS_OUT] = str(self.workers_dir)
        if s.app_dir:
            env[target.ENV_APP_DIR] = str(Path(s.app_dir).resolve())
        if s.factory:
            env[target.ENV_FACTORY] = "1"
        if s.threads is not None:
            env[target.ENV_THREADS] = str(s.threads)
        if s.probe:
            self.probe_dir.mkdir(exist_ok=True)
            env[target.ENV_PROBE_OUT] = str(self.probe_dir)
            env[target.ENV_BLOCK_MS] = repr(s.block_ms)
        return env

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        s = self.settings
        if s.port:
            ensure_port_free(s.host, s.port)
        command, env = self.command(), self.environment()
        # Built once: a kind may choose its port while building it (granian).
        self._runs_target = any(part.startswith(f"{target.__name__}:") for part in command)
        with self.log_path.open("wb") as log:
            self._proc = lifeline.spawn(
                lambda: subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=s.app_dir or None,
                    start_new_session=True,
                    preexec_fn=lifeline.child_setup(),
                )
            )
        atexit.register(self._kill_quietly)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        workdir = Path(self._workdir.name)
        # Only a server that runs our target app writes the workers' facts files.
        wait_for_workers = self._runs_target
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self.returncode = self._proc.returncode
                self._raise_start_failure()
            # The port the server itself says it bound: no other process can pass for it.
            port = self.kind.bound_port(workdir)
            # Every worker too: the socket listens (in the parent) before the workers run the
            # app, and a load sent then goes to whichever worker starts first.
            up = len(self.worker_lives()) >= self.settings.workers
            workers_up = up or not wait_for_workers
            if port is not None and workers_up and is_listening(self.settings.host, port):
                self.port = port
                return
            time.sleep(0.05)
        self.stop()
        raise ServerStartError(
            f"The server for {self.settings.app} did not answer on {self.settings.host} within "
            f"{self.settings.start_timeout_s:g} s.",
            self.log_tail(),
        )

    def _raise_start_failure(self) -> None:
        tail = self.log_tail()
        if "address already in use" in tail.lower():
            raise PortInUseError(
                f"Port {self.port} on {self.settings.host} is in use. "
                "Pass another port or free it.",
                tail,
            )
        raise ServerStartError(
            f"The server for {self.settings.app} exited with code {self.returncode} before it "
            "answered: see its log below.",
            tail,
        )

    def check_alive(self, during: str = "while it was being measured", wait_s: float = 0.0) -> None:
        """Raise `ServerDiedError` if the server has exited (`during` says when, in the
        message). `wait_s`: how long to give a server that is likely dying (its connections
        just dropped) to be seen exiting, since the kernel closes its sockets before its parent
        can reap it."""
        if self._proc is not None and wait_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(wait_s)
        if self._proc is not None and self._proc.poll() is not None:
            self.returncode = self._proc.returncode
            raise ServerDiedError(
                f"The server for {self.settings.app} {_how_it_ended(self.returncode)} {during}.",
                self.log_tail(),
            )

    def is_alive(self) -> bool:
        """Whether the server is still running (`False` before it starts and once stopped)."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after the grace period); return its exit code.

        Called while a Ctrl-C (`KeyboardInterrupt`) unwinds, the grace is at most
        `INTERRUPT_GRACE_S`: nobody will read what a graceful stop would have saved.
        """
        proc = self._proc
        if proc is None:
            return self.returncode
        grace = self.settings.stop_grace_s
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            grace = min(grace, INTERRUPT_GRACE_S)
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        else:
            # Workers of a dead master may live on in its process group.
            self._signal_group(proc, signal.SIGKILL)
        self.returncode = proc.returncode
        self._proc = None
        atexit.unregister(self._kill_quietly)
        return self.returncode

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def _kill_quietly(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(self._proc, signal.SIGKILL)

    def log_text(self) -> str:
        """Everything the server has written to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines of the server's log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def probe_records(self) -> list[ServerRecord]:
        """What the probe in each worker wrote: its final record, or for a worker that ended
        without writing it (a crash), its last checkpoint (empty without `probe=True`).
        See `loopscope.trace.record_files.read_records`."""
        return read_records(self.probe_dir)

    def worker_lives(self) -> list[WorkerLife]:
        """Every process that served the app so far, as it described itself (pid, start, loop,
        HTTP protocol); see `loopscope.server.facts`."""
        return read_workers(self.workers_dir)

    def close(self) -> None:
        """Stop the server and remove its working directory (log and probe records)."""
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _how_it_ended(returncode: int | None) -> str:
    """`exited with code 3`, or `was killed by SIGSEGV (a crash in native code)`."""
    if returncode is None or returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    crash = " (a crash in native code)" if -returncode in (signal.SIGSEGV, signal.SIGBUS) else ""
    return f"was killed by {name}{crash}"
