"""Every error loopscope raises on purpose, in one tree.

```
LoopscopeError                 anything loopscope reports as a one-line message
├── UsageError                 bad input from the user: an option, a scenario, a hit
├── ServerError                the server under study could not be run
│   ├── PortInUseError         the requested port is taken
│   ├── ServerStartError       the app failed to import or the server never answered
│   └── ServerDiedError        the server exited while it was being measured
├── LoadError                  the load could not be sent or its answers not read
├── TraceError                 a trace file could not be read or written
│   └── TraceFormatError       a trace file is corrupt, foreign, or from another version
└── ReportError                a report could not be written or screenshotted
    └── ChromiumNotFoundError  no Chromium to render the report's PNG with
```

Only the CLI turns these into messages and exit codes (each class's `exit_code`); library code
raises them and converts third-party errors at the boundary with `raise ... from exc`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopscope.trace.model import Trace


class LoopscopeError(Exception):
    """Base of every error that loopscope reports to the user as a message, not a traceback."""

    exit_code = 1


class UsageError(LoopscopeError):
    """Raised for bad user input: an unknown mode, a malformed `--hit`, an impossible setting."""

    exit_code = 2


class ServerError(LoopscopeError):
    """Raised when the server under study cannot be run; `log_tail` holds its last log lines."""

    exit_code = 3

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail

    def __str__(self) -> str:
        message = super().__str__()
        if self.log_tail:
            return f"{message}\n--- server log (last lines) ---\n{self.log_tail}"
        return message


class PortInUseError(ServerError):
    """Raised when the port asked for is already bound by another process."""


class ServerStartError(ServerError):
    """Raised when the app fails to import or the server does not answer in time."""


class ServerDiedError(ServerError):
    """Raised when the server process exits while loopscope is still using it.

    `partial`, when set, is the `Trace` of what was measured before the server died (its
    `run.partial` is true), for the caller to write before it reports the error.
    """

    def __init__(self, message: str, log_tail: str = "", partial: Trace | None = None) -> None:
        super().__init__(message, log_tail)
        self.partial = partial


class LoadError(LoopscopeError):
    """Raised when the load cannot be sent, e.g. every request failed to connect."""

    exit_code = 4


class TraceError(LoopscopeError):
    """Raised when a trace file cannot be read or written."""

    exit_code = 5


class TraceFormatError(TraceError):
    """Raised when a trace file is corrupt, not a loopscope trace, or of an unknown version."""


class ReportError(LoopscopeError):
    """Raised when a report cannot be written, or Chromium fails to screenshot it."""

    exit_code = 6


class ChromiumNotFoundError(ReportError):
    """Raised when no Chromium executable is found for a screenshot; the message says how to
    install one."""


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "some requests failed (5xx or no answer; --allow-errors exits 0), or an unexpected error",
    UsageError.exit_code: "bad input: an option, a mode, a hit, an output path",
    ServerError.exit_code: "the app could not be run: it did not import, failed at startup, "
    "never answered, its port was taken, or it died mid-run (what was measured is still written)",
    LoadError.exit_code: "the load could not be sent: no request got an answer",
    TraceError.exit_code: "a trace file could not be read or written: missing, empty, truncated, "
    "foreign or of another version",
    ReportError.exit_code: "a report could not be written or screenshotted",
    130: "interrupted (Ctrl-C, SIGTERM, SIGHUP); the server was stopped",
}
"""Every exit code the `loopscope` command uses, with its meaning (shown in `--help`)."""
