"""The guard's settings, read once from the command line and `[tool.pytest.ini_options]`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import pytest

from loopscope.trace.constants import DEFAULT_BLOCK_MS

Mode = Literal["fail", "warn"]


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """`block_ms`: the loop-block threshold; `mode`: whether a block fails the test or only
    warns; `json_path`: where to write the tests' traces (`None`: nowhere); `root`: the
    project's root, against which `path:line` places are written and matched."""

    block_ms: float = DEFAULT_BLOCK_MS
    mode: Mode = "fail"
    json_path: Path | None = None
    root: Path | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> GuardSettings:
        """The settings of this pytest run: options first, then the ini file, then defaults.

        Raises `pytest.UsageError` for a threshold that is not a positive number or an unknown
        mode.
        """
        block_ms = config.getoption("loopscope_block_ms")
        if block_ms is None:
            text = str(config.getini("loopscope_block_ms")).strip()
            try:
                block_ms = float(text) if text else DEFAULT_BLOCK_MS
            except ValueError:
                raise pytest.UsageError(
                    f"loopscope_block_ms must be a number of milliseconds, got {text!r}."
                ) from None
        if not block_ms > 0:
            raise pytest.UsageError(f"--loopscope-block-ms must be positive, got {block_ms:g}.")
        mode = config.getoption("loopscope_mode") or str(config.getini("loopscope_mode")).strip()
        mode = mode or "fail"
        if mode not in ("fail", "warn"):
            raise pytest.UsageError(f"loopscope_mode must be 'fail' or 'warn', got {mode!r}.")
        json_path = config.getoption("loopscope_json")
        return cls(
            block_ms=float(block_ms),
            mode=cast(Mode, mode),
            json_path=Path(json_path) if json_path else None,
            root=config.rootpath,
        )
