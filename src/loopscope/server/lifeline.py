"""A server dies with the process that started it, however that process ends.

`atexit` hooks and `finally` blocks stop a server when loopscope exits in order; a `kill -9`, an
OOM kill or a closed terminal runs none of them. Linux's `PR_SET_PDEATHSIG` asks the kernel
itself to signal a process when its parent dies, so nothing of ours has to run:

- `ServerProcess` sets it in the server's child between fork and exec (`child_setup`); it
  survives the exec into `python -m uvicorn`.
- Each worker of a multi-process server (uvicorn `--workers N`, gunicorn) sets it for itself
  when it imports loopscope's target app (`die_with_parent`): the master's death then takes every
  worker with it, even one whose event loop is blocked.

The kernel signals the child when the *thread* that forked it ends, not the process, so a server
started from any thread but the main one is forked from one long-lived spawner thread instead
(`spawn`); the main thread ends only with the process.

Elsewhere than on Linux these are no-ops: the `atexit` hook remains the only defence there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_prctl: Callable[..., int] | None = None
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _load_prctl() -> Callable[..., int] | None:
    # Looked up once, before any fork: the child must not load a library between fork and exec.
    global _prctl
    if _prctl is None and sys.platform == "linux":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _prctl = libc.prctl
        except (OSError, AttributeError):
            _prctl = None
    return _prctl


def _arm(prctl: Callable[..., int], parent: int, sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died before the request was made: the kernel would never tell.
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def child_setup(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that makes the child die with this process.

    `None` where the platform has no `PR_SET_PDEATHSIG`.
    """
    prctl = _load_prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def setup() -> None:
        _arm(prctl, parent, sig)

    return setup


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Make this process die (by `sig`) when its parent does; return whether it could.

    Called at the top of a server's worker: a worker started by `multiprocessing` knows its real
    parent, so one whose master is already gone dies at once rather than serve as an orphan.
    """
    prctl = _load_prctl()
    if prctl is None:
        return False
    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None and spawner.pid is not None else os.getppid()
    _arm(prctl, parent, sig)
    return True


def spawn(start: Callable[[], T]) -> T:
    """Run `start` (which forks a child) on a thread that lives as long as this process.

    On the main thread it runs at once; on any other it runs on one shared spawner thread, so
    the child's death signal is tied to the process and not to a thread that may end first.
    """
    if threading.current_thread() is threading.main_thread():
        return start()
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopscope-spawner")
    return _spawner.submit(start).result()
