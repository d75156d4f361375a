"""Name the line a stuck loop is executing: the innermost frame in the user's own code, and the
library line it is stuck in.

"User code" is everything that is not the standard library, not an installed package
(site-packages) and not loopscope's own machinery (the probe, the server wrapper), so a
`time.sleep` inside a helper of the app is blamed on the helper's line, not on uvicorn or
asyncio. loopscope's demo app is user code wherever it is installed: it is the app under
study. Paths are shown relative to the app root (or the working directory) when they lie under
it, absolute otherwise.

Installed libraries do real work too (fastapi-users hashes a password with argon2 on the loop,
in a route the library provides). A library frame that is not server machinery (uvicorn,
Starlette, FastAPI, anyio, ...) is shown relative to its site-packages (`argon2/low_level.py`).
The innermost such frame below the user's line is the block's `inner` line; where no user frame
is on the stack at all, `where` is the last line of the outermost library on it (the library
that served the route: `fastapi_users/manager.py:376`, which called into argon2).
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

MACHINERY = frozenset(
    {
        "uvicorn", "starlette", "fastapi", "anyio", "sniffio", "h11", "httptools", "uvloop",
        "websockets", "wsproto", "gunicorn", "uvicorn_worker", "loopscope", "_pytest", "pytest",
        "pluggy", "httpx", "httpcore", "click", "watchfiles",
    }
)  # fmt: skip
"""Top-level packages that serve requests rather than do a request's work: never blamed."""


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
        self._site = tuple(
            d
            for d in self._libraries
            if d.rstrip(os.sep).endswith(("site-packages", "dist-packages"))
        )
        self._paths: dict[str, str | None] = {}
        self._library_paths: dict[str, str | None] = {}

    def library_path(self, filename: str) -> str | None:
        """`filename` relative to its site-packages (`argon2/low_level.py`) if it is an installed
        library that is not server machinery, else `None`."""
        try:
            return self._library_paths[filename]
        except KeyError:
            pass
        shown: str | None = None
        real = os.path.realpath(filename)
        for directory in self._site:
            if real.startswith(directory):
                relative = real[len(directory) :]
                top = relative.split(os.sep, 1)[0].removesuffix(".py")
                if top not in MACHINERY and not real.startswith(_LOOPSCOPE_DIR):
                    shown = relative
                break
        self._library_paths[filename] = shown
        return shown

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

    def describe(self, frame: FrameType | None) -> tuple[str | None, list[str], str | None]:
        """`where`, the stack (innermost last) and `inner` for `frame`.

        `where` is the innermost user frame, else the last line of the outermost library on
        the stack; `inner` the innermost library line below `where` (`None` if there is none or
        it is `where`). The stack is the innermost frame actually running followed by the user
        and library frames above it, at most `MAX_STACK`.
        """
        return self.describe_snapshot(snapshot(frame))

    def describe_snapshot(self, frames: Snapshot) -> tuple[str | None, list[str], str | None]:
        """`describe` for a stack already taken with `snapshot` (or `FrameNamer.snapshot`)."""
        named: list[tuple[str, str, int, str]] = []  # (kind, path, line, function), innermost 1st
        for depth, (filename, line, function) in enumerate(frames):
            shown = self.display_path(filename)
            if shown is not None:
                named.append(("app", shown, line, function))
                continue
            library = self.library_path(filename)
            if library is not None:
                named.append(("library", library, line, function))
            elif depth == 0 and not filename.startswith(_LOOPSCOPE_DIR):
                named.append(("running", filename, line, function))
        where_at = next((i for i, f in enumerate(named) if f[0] == "app"), None)
        if where_at is None:
            where_at = _library_entry(named)
        where = inner = None
        if where_at is not None:
            where = f"{named[where_at][1]}:{named[where_at][2]}"
            below = [f for f in named[:where_at] if f[0] == "library"]
            if below:
                inner = f"{below[0][1]}:{below[0][2]}"
        stack = [f"{path}:{line} in {function}" for _, path, line, function in named]
        stack = stack[:MAX_STACK]
        stack.reverse()
        return where, stack, inner

    def snapshot(self, thread_id: int) -> Snapshot:
        """What the thread `thread_id` is running right now, as `snapshot` takes it: taken in
        one go, without letting go of the GIL (see `snapshot`)."""
        frame = sys._current_frames().get(thread_id)
        try:
            return snapshot(frame)
        finally:
            del frame  # a frame of another thread must not outlive the sample

    def sample(self, thread_id: int) -> tuple[str | None, list[str], str | None]:
        """Describe what the thread `thread_id` is running right now."""
        return self.describe_snapshot(self.snapshot(thread_id))


Snapshot = list[tuple[str, int, str]]
"""A thread's stack at one moment: `(filename, line, function)` per frame, innermost first."""


def snapshot(frame: FrameType | None) -> Snapshot:
    """The stack from `frame` outwards, as plain values read at once.

    Naming the frames (`FrameNamer.describe_snapshot`) resolves their files on disk the first
    time it meets them, and every system call lets go of the GIL. Sampling another thread that
    is busy in Python (a CPU loop on the event loop), the sampler then waits a switch interval
    (5 ms) to get the GIL back after each one: naming a stack of fresh files took longer than a
    250 ms stall, and the frames, still live, had moved on meanwhile. Their lines are read here
    first, with no call that releases the GIL, so the sample is of one moment.
    """
    frames: Snapshot = []
    while frame is not None:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return frames


def _library_entry(frames: list[tuple[str, str, int, str]]) -> int | None:
    """The index of the last line of the outermost library on the stack (innermost first):
    where the library that served the route called into everything below it."""
    libraries = [i for i, f in enumerate(frames) if f[0] == "library"]
    if not libraries:
        return None
    outermost = libraries[-1]
    package = frames[outermost][1].split(os.sep, 1)[0]
    same = [i for i in libraries if frames[i][1].split(os.sep, 1)[0] == package]
    return same[0]
