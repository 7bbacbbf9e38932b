"""A grid's joblib (loky) workers end with the grid. Loky notices a dead parent only between jobs, so a
grid killed mid-cell (SIGKILL, an OOM killer, a closed terminal's lost session) left its workers
training on, holding their runs' locks and devices, until their cell ended — hours on the blog suite.

The grid names itself in the environment its workers inherit (`mark_parent`); a job that runs in a
direct child of that process starts a daemon thread (`watch_parent`) that ends the process as soon as
its parent is no longer the grid (reparented: the grid died). Nothing is lost: a run's lock dies with
its process and the run resumes from its last checkpoint at the next grid. Polling rather than Linux's
PR_SET_PDEATHSIG: that signal follows the thread that forked the worker (a loky management thread, which
may end while the grid lives), and it exists on Linux only. Jobs of the basic launcher run in the grid
itself, and SLURM's on other hosts: neither is watched.
"""
from __future__ import annotations

import os
import socket
import threading
import time

PARENT_ENV = "ONECYCLE_GRID_PARENT"  # "<host>:<pid>" of the grid that launched the jobs
POLL_S = 0.5


class _Watch:
    started = False


def mark_parent() -> None:
    """Called by the grid before it launches: its workers inherit the mark."""
    os.environ[PARENT_ENV] = f"{socket.gethostname()}:{os.getpid()}"


def grid_parent() -> int | None:
    """The grid's pid when this process is a direct child of it on this host, else None."""
    host, _, pid = os.environ.get(PARENT_ENV, "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid) if int(pid) == os.getppid() != os.getpid() else None


def watch_parent() -> bool:
    """In a grid's worker process: end it once the grid is gone (idempotent). True when watching."""
    parent = grid_parent()
    if _Watch.started or parent is None:
        return _Watch.started

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(1)  # like the kill the grid got: no cleanup that could block, the kernel frees the locks

    threading.Thread(target=watch, name="grid-parent-watch", daemon=True).start()
    _Watch.started = True
    return True
