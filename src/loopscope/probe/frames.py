"""Name the line a stuck loop is executing: the innermost frame in the user's own code.

"User code" is everything that is not the standard library, not an installed package
(site-packages) and not loopscope's own machinery (the probe, the server wrapper), so a
`time.sleep` inside a helper of the app is blamed on the helper's line, not on uvicorn or
asyncio. loopscope's demo app is user code wherever it is installed: it is the app under
study. Paths are shown relative to the app root (or the working directory) when they lie under
it, absolute otherwise.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path
from types import FrameType

MAX_STACK = 8
"""At most this many frames in a `LoopBlock.stack`."""

_LOOPSCOPE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_DEMO_DIR = str(Path(__file__).resolve().parents[1] / "demo") + os.sep


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    dirs.add(_LOOPSCOPE_DIR)
    return tuple(sorted({os.path.realpath(d) + os.sep for d in dirs}))


class FrameNamer:
    """Turns a thread's current frame into `where` (`path:line`) and a short stack.

    Classifying a file costs a few string operations, so answers are cached per file name.
    """

    def __init__(self, app_root: str | None = None) -> None:
        roots = [app_root] if app_root else []
        roots.append(os.getcwd())
        self._roots = [os.path.realpath(root) + os.sep for root in roots]
        self._libraries = _library_dirs()
        self._paths: dict[str, str | None] = {}

    def display_path(self, filename: str) -> str | None:
        """`filename` as shown to the user, or `None` if it is not user code."""
        try:
            return self._paths[filename]
        except KeyError:
            pass
        shown: str | None = None
        if not filename.startswith("<"):  # "<frozen ...>", "<string>": no source to blame
            real = os.path.realpath(filename)
            if real.startswith(_DEMO_DIR) or not real.startswith(self._libraries):
                shown = real
                for root in self._roots:
                    if real.startswith(root):
                        shown = real[len(root) :]
                        break
        self._paths[filename] = shown
        return shown

    def describe(self, frame: FrameType | None) -> tuple[str | None, list[str]]:
        """`where` (innermost user frame) and the stack, innermost last, for `frame`.

        The stack is the innermost frame actually running (if it is library code, it is what
        the user's line called) followed by the user frames above it, at most `MAX_STACK`.
        """
        where: str | None = None
        stack: list[str] = []
        innermost = True
        while frame is not None and len(stack) < MAX_STACK:
            code = frame.f_code
            shown = self.display_path(code.co_filename)
            ours = code.co_filename.startswith(_LOOPSCOPE_DIR)
            if shown is not None or (innermost and not ours):
                path = shown if shown is not None else code.co_filename
                stack.append(f"{path}:{frame.f_lineno} in {code.co_name}")
                if shown is not None and where is None:
                    where = f"{shown}:{frame.f_lineno}"
            innermost = False
            frame = frame.f_back
        stack.reverse()
        return where, stack

    def sample(self, thread_id: int) -> tuple[str | None, list[str]]:
        """Describe what the thread `thread_id` is running right now."""
        frame = sys._current_frames().get(thread_id)
        try:
            return self.describe(frame)
        finally:
            del frame  # a frame of another thread must not outlive the sample
