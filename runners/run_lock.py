"""One writer per run: a lock beside the run directory, held from the first read of its records to its
last write, by whoever trains it — a `python -m runners.train`, a grid job, a requeued SLURM job.

The lock is the kernel's (fcntl, through `filelock`), so it dies with its process: a run killed with
SIGKILL leaves no stale lock to take over, and a second writer can never start while the first lives —
also its "ghost" on another node of a shared filesystem (NFSv4 carries the lock; NFSv3 needs lockd,
Lustre the `flock` mount option). A second process waits, saying who holds the run, then finds it
finished (and skips it) or interrupted (and resumes it). Who holds it is written beside the lock
(`.<run_id>.owner`: host, pid, since), only to be shown to the one waiting. A holder that recorded
nothing (a run refused under its lock) removes the lock file as it lets go; a waiter that then finds it
holds a removed file takes the lock again on the path's new file.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path

import filelock

from results import records
from results.errors import UserError


class RunLock:
    """`with RunLock(run_dir):` — the one writer of `run_dir` while inside."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.lock_path = run_dir.with_name(f".{run_dir.name}.lock")
        self.owner_path = run_dir.with_name(f".{run_dir.name}.owner")
        self.lock = filelock.FileLock(self.lock_path)

    def owner(self) -> str:
        try:
            who = json.loads(self.owner_path.read_text())
            return f"host {who['host']} pid {who['pid']} since {who['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _acquire(self, quiet: bool) -> None:
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            if not quiet:
                print(f"run {self.run_dir.name} is being trained by {self.owner()}; waiting for it "
                      f"(lock {self.lock_path})", file=sys.stderr, flush=True)
            self.lock.acquire()

    def _held_file(self) -> os.stat_result | None:
        """The lock file this process holds open, when filelock says which (None: unknown)."""
        fd = getattr(getattr(self.lock, "_context", None), "lock_file_fd", None)
        return os.fstat(fd) if isinstance(fd, int) else None

    def _holds_the_file(self) -> bool:
        """Whether the file locked is still the one at lock_path: a run refused before it recorded
        anything removes its lock file (__exit__), and a process that waited on it then holds a lock on a
        file nobody else will open — it must lock the new one."""
        held = self._held_file()
        if held is None:
            return True
        try:
            now = os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)

    def __enter__(self) -> "RunLock":
        waited = False
        while True:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._acquire(quiet=waited)
            except FileNotFoundError:  # its directory removed by a refused run meanwhile: make it again
                continue
            except OSError as exc:  # ENOLCK, ENOSYS, EINVAL: a filesystem without working locks
                raise UserError(f"cannot lock {self.lock_path} ({exc.strerror or exc}): this filesystem "
                                f"does not support file locks (NFSv3 needs lockd; Lustre the flock mount "
                                f"option)")
            if self._holds_the_file():
                break
            self.lock.release()
            waited = True
        since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        try:
            records.write_json_atomic(self.owner_path, {"host": socket.gethostname(), "pid": os.getpid(),
                                                        "since": since})
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.owner_path.unlink(missing_ok=True)
            # Nothing recorded (a refusal met under the lock): the lock file goes too, unlinked while held
            # so that a waiter notices (_holds_the_file). Only where that check can run.
            if not os.path.lexists(self.run_dir) and self._held_file() is not None:
                self.lock_path.unlink(missing_ok=True)
        finally:
            self.lock.release()
