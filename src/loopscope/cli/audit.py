"""`loopscope audit`: where each entry point runs and what blocks the event loop, from source."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from loopscope.audit import audit as run_audit
from loopscope.audit import load_settings
from loopscope.audit.config import DEFAULT_MAX_DEPTH
from loopscope.audit.model import SEVERITY_RANK
from loopscope.audit.render import print_text, to_json
from loopscope.audit.sarif import to_sarif
from loopscope.cli._shared import console


class Format(StrEnum):
    """Output formats of `loopscope audit`."""

    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(StrEnum):
    """The lowest severity that makes `loopscope audit` exit 1."""

    error = "error"
    warning = "warning"
    never = "never"


def audit(
    path: Annotated[Path, typer.Argument(help="Project directory (or one Python file) to audit.")],
    output: Annotated[Format, typer.Option("--format", help="text, json or sarif.")] = Format.text,
    fail_on: Annotated[
        FailOn, typer.Option("--fail-on", help="Exit 1 on findings at or above this severity.")
    ] = FailOn.error,
    max_depth: Annotated[
        int, typer.Option("--max-depth", help="Follow at most this many nested calls.")
    ] = DEFAULT_MAX_DEPTH,
) -> None:
    """Answer "async def or def?" for a whole codebase, from its source (never imported)."""
    result = run_audit(path, load_settings(path, max_depth))
    if output is Format.json:
        typer.echo(to_json(result))
    elif output is Format.sarif:
        typer.echo(to_sarif(result))
    else:
        print_text(result, console)
    if fail_on is not FailOn.never and result.worst() >= SEVERITY_RANK[fail_on.value]:
        raise typer.Exit(1)
