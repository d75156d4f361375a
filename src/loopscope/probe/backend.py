"""The one place where the probe's hot paths are chosen: C or Python.

`load_backend()` gives the C extension `loopscope.probe._speedups` where it was compiled, else
(or with `LOOPSCOPE_PURE_PYTHON=1`) its Python twin `loopscope.probe._speedups_python`. Both
have the API of `_speedups.pyi`, one for one (pyinstrument's `low_level` does the same), so the
rest of the probe never asks which one it has.
"""

from __future__ import annotations

import os
from types import ModuleType

PURE_PYTHON_ENV = "LOOPSCOPE_PURE_PYTHON"
"""Set to `1` to run the Python twin even where the C extension was compiled."""


def load_backend() -> ModuleType:
    """The C extension, or its Python twin where it is missing or `LOOPSCOPE_PURE_PYTHON=1`.

    Read when a probe is installed, so a test can switch between the two.
    """
    if os.environ.get(PURE_PYTHON_ENV) != "1":
        try:
            from loopscope.probe import _speedups
        except ImportError:
            pass
        else:
            return _speedups
    from loopscope.probe import _speedups_python

    return _speedups_python


def is_compiled(backend: ModuleType) -> bool:
    """Whether `backend` is the C extension."""
    return backend.__name__ == "loopscope.probe._speedups"
