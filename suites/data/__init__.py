"""`make data`: fetch and verify what a suite's tasks read from disk, before anything trains.

Each task declares its needs (`TaskConf.data_needs`, suites/base.py): an item and the path it reads it
at. This package knows the items (items.py: source, check, placement), moves the bytes (download.py:
resumable, checked, atomic) and lists hub files (hub.py). `python -m suites.data fetch|check` is the CLI;
`runners.grid` calls `survey` before launching and `fetch` on a CUDA machine.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import filelock

from ..base import DataNeed
from .disk import check_writable, leftovers, make_dirs, remove_leftovers, unmake_dirs
from .download import DataError, Unreachable, check_free_space
from .items import Cifar10, StanfordCars, TorchvisionWeights, WikiText2

ITEMS = {"cifar10": Cifar10(), "wikitext2": WikiText2(), "stanford_cars": StanfordCars()}


def item_for(name: str):
    if name.startswith("weights:"):  # weights:<arch>/<weights enum name>
        arch, _, weights = name.removeprefix("weights:").partition("/")
        return TorchvisionWeights(arch, weights)
    return ITEMS[name]


@dataclass
class Status:
    need: DataNeed
    problem: str | None  # None: present and verified (or present, where verify is off)

    @property
    def item(self):
        return item_for(self.need.item)

    def line(self) -> str:
        state = "present" + (", verified" if self.need.verify else "") if self.problem is None else self.problem
        return f"  {self.item.title:<32} {Path(self.need.path).resolve()}: {state}"


def unique(needs) -> list[DataNeed]:
    """One need per (item, path): verified wins over unverified."""
    found: dict[tuple, DataNeed] = {}
    for need in needs:
        key = (need.item, Path(need.path))
        if key not in found or need.verify:
            found[key] = need
    return list(found.values())


def survey(needs) -> list[Status]:
    """Each need checked as the fetch would: a file that fails its check is not present."""
    return [Status(need, item_for(need.item).problem(Path(need.path), need.verify)) for need in unique(needs)]


def make_command(suite: str | None = None, tasks: list[str] | None = None) -> str:
    """The command that fetches these needs."""
    if tasks:
        return f"make data TASKS={','.join(tasks)}"
    return f"make data SUITE={suite}" if suite else "make data"


def fetch(needs, log=print) -> list[str]:
    """Fetch every need that is not present; one message per item that could not be fetched (with its
    URL and destination), none when all are present and verified afterwards. A destination that cannot
    be written stops it all before anything is written (UserError: one line, exit 2)."""
    statuses = survey(needs)
    for status in statuses:
        if status.problem is not None:
            check_writable(Path(status.need.path), status.item.title)
    failures = []
    for status in statuses:
        if status.problem is None:
            tidy(Path(status.need.path), log)
            log(f"{status.item.title}: present at {status.need.path}")
            continue
        try:
            fetch_one(status.need, log)
        except DataError as exc:
            failures.append(unreachable_message(status, exc) if isinstance(exc, Unreachable) else str(exc))
        except OSError as exc:  # the disk, not the network: one line too, not a traceback
            failures.append(f"{status.item.title}: {exc}; nothing was placed at {status.need.path}")
    return failures


def item_lock(dest: Path, timeout: float = -1) -> filelock.FileLock:
    """One fetch of an item at a time (two `make data` at once: one fetches, the other finds it done)."""
    return filelock.FileLock(dest.parent / f".{dest.name}.lock", timeout=timeout)


def fetch_one(need: DataNeed, log) -> None:
    """An item's `fetch` checks what it built before placing it, so a placed item is a verified one. A
    fetch that fails having written nothing removes the directories it made (the data root, say)."""
    item, dest = item_for(need.item), Path(need.path)
    log(f"{item.title}: fetching into {dest}")
    check_free_space(dest.parent, item.space, item.title)
    created = make_dirs(dest.parent)
    lock = item_lock(dest)
    try:
        with lock:
            remove_leftovers(dest, log)
            if item.problem(dest, verify=True) is not None:
                item.fetch(dest)
    except BaseException:
        unmake_dirs(created, lock.lock_file)
        raise
    log(f"{item.title}: verified at {dest}")


def tidy(dest: Path, log=print) -> None:
    """Beside a present item, remove what a killed fetch left, unless another fetch holds the item now
    (its build directory is live) or the directory is someone's read-only copy."""
    if not leftovers(dest):
        return
    try:
        with item_lock(dest, timeout=0):
            remove_leftovers(dest, log)
    except (filelock.Timeout, OSError):
        pass


def unreachable_message(status: Status, exc: Exception) -> str:
    return (f"{status.item.title}: {exc}; it goes to {status.need.path}. Rerun where the network allows "
            f"(a cut download resumes), or {status.item.manual(Path(status.need.path))}")


def print_failures(failures: list[str]) -> None:
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
