"""The `loopscope` command: parse options, call the library, render, exit.

One module per command (`demo`, `trace`, `report`, ...), each a thin typer function registered
from `COMMANDS`. No logic lives here beyond wiring: every command builds settings, calls one
library function and hands its result to a renderer. `LoopscopeError`s become one-line messages
and exit codes; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from loopscope.cli._shared import err_console
from loopscope.errors import EXIT_CODES, LoopscopeError

# command name → "module:function"; a new command is a new module and a new row here.
COMMANDS: dict[str, str] = {
    "demo": "loopscope.cli.demo:demo",
    "trace": "loopscope.cli.trace:trace",
    "report": "loopscope.cli.report:report",
    "sim": "loopscope.cli.sim:sim",
    "audit": "loopscope.cli.audit:audit",
    "bench": "loopscope.cli.bench:bench",
}

app = typer.Typer(
    name="loopscope",
    help="Show, measure, predict and lint how a Python web server schedules requests.",
    epilog="Exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ". Errors are one line; --debug shows the traceback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


for _name, _target in COMMANDS.items():
    _module, _function = _target.split(":")
    app.command(_name)(getattr(importlib.import_module(_module), _function))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _say_interrupted() -> None:
    # Every `finally` on the way up has stopped the server it started by now.
    err_console.print("interrupted; server stopped", highlight=False)


def main() -> None:
    """The console script's entry point: click handles usage errors, we handle ours."""
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` stops the server it started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        app()
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130; keep the code, say what happened.
        if _caused_by_interrupt(exc):
            _say_interrupted()
        raise
    except LoopscopeError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # A bug of ours: one line that says so; the traceback is one --debug away.
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/] loopscope failed unexpectedly ({escape(type(exc).__name__)}: "
            f"{escape(str(exc))}). This is a bug: run again with --debug for the traceback, "
            "and report it.",
            highlight=False,
        )
        sys.exit(1)
