"""Audit settings: the command's options plus `[tool.loopscope.audit]` in the project's
`pyproject.toml` (`blocking-io`, `blocking-cpu`, `allow`: lists of qualified names;
`blocking-with`: classes whose `with x:` blocks; `exclude`: globs of files to skip)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from loopscope.errors import UsageError

DEFAULT_MAX_DEPTH = 32
_KEYS = frozenset({"blocking-io", "blocking-cpu", "blocking-with", "allow", "exclude"})


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How to audit: how deep to follow calls, and the project's catalogue additions."""

    max_depth: int = DEFAULT_MAX_DEPTH
    blocking_io: tuple[str, ...] = ()
    blocking_cpu: tuple[str, ...] = ()
    blocking_with: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def _names(table: dict[str, object], key: str, where: Path) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: [tool.loopscope.audit] {key} must be a list of strings.")
    return tuple(value)


def load_settings(root: Path, max_depth: int = DEFAULT_MAX_DEPTH) -> AuditSettings:
    """Settings for auditing `root`, reading `root/pyproject.toml` when there is one."""
    if max_depth < 1:
        raise UsageError(f"--max-depth must be at least 1, not {max_depth}.")
    pyproject = (root if root.is_dir() else root.parent) / "pyproject.toml"
    if not pyproject.is_file():
        return AuditSettings(max_depth=max_depth)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"Cannot read {pyproject}: {exc}. Fix the file or remove it.") from exc
    table = data.get("tool", {}).get("loopscope", {}).get("audit", {})
    if not isinstance(table, dict):
        raise UsageError(f"{pyproject}: [tool.loopscope.audit] must be a table.")
    unknown = set(table) - _KEYS
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise UsageError(
            f"{pyproject}: unknown key {sorted(unknown)[0]!r} in [tool.loopscope.audit]; "
            f"use one of {known}."
        )
    return AuditSettings(
        max_depth=max_depth,
        blocking_io=_names(table, "blocking-io", pyproject),
        blocking_cpu=_names(table, "blocking-cpu", pyproject),
        blocking_with=_names(table, "blocking-with", pyproject),
        allow=_names(table, "allow", pyproject),
        exclude=_names(table, "exclude", pyproject),
    )
