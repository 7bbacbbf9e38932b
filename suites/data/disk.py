"""Where a fetched item lands: built beside its destination and renamed into place whole, with the
permissions the user's umask gives (tempfile's directories are private, 0700, which a shared data
directory must not inherit). A build killed half-way leaves its directory behind; the next fetch of the
item removes it, under the item's lock. A destination that cannot be written is refused before anything
is, and directories a failed fetch made are removed again, so a fetch that cannot succeed leaves no
trace (not even the data root it would have made).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from results.errors import UserError

from .download import nearest_existing

BUILD = "build-"  # a build directory is `.<destination name>.build-<random>`
# What tempfile.mkdtemp named them before (`.<name>.<8 of [a-z0-9_]>`); `.<name>.download` holds an
# item's resumable downloads and is kept.
LEGACY_BUILD = re.compile(r"(?!download$)[a-z0-9_]{8}")
WRITABLE_HINT = ("make it writable, or fetch into a writable directory: data_root=DIR or $ONECYCLE_DATA "
                 "(pretrained weights: $TORCH_HOME)")


def current_umask() -> int:
    """The process's umask, from /proc where it can be read: setting it to read it races other threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def place_dir(built: Path, dest: Path) -> None:
    """Rename the verified directory `built` to `dest` with the mode a plain mkdir would give it; an
    existing `dest` is moved aside first (it may be someone's manual copy: never deleted)."""
    os.chmod(built, 0o777 & ~current_umask())
    if dest.exists():
        aside = dest.with_name(f"{dest.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        dest.rename(aside)
        print(f"  moved the unverified {dest} aside to {aside}")
    built.rename(dest)


def build_beside(dest: Path, build) -> None:
    """`build(tmp)` returns the finished directory inside `tmp`, a temporary directory beside `dest`
    (same filesystem, so the final rename is atomic); it is placed at `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{BUILD}", dir=dest.parent))
    try:
        place_dir(build(tmp), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def leftovers(dest: Path) -> list[Path]:
    """Build directories of `dest` that a killed fetch left (ours by name; nothing else is touched)."""
    prefix = f".{dest.name}."
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink()
            and (p.name[len(prefix):].startswith(BUILD) or LEGACY_BUILD.fullmatch(p.name[len(prefix):]))]


def remove_leftovers(dest: Path, log=print) -> None:
    """Only while holding the item's lock: a build directory is a live one while its fetch holds it."""
    for path in leftovers(dest):
        shutil.rmtree(path, ignore_errors=True)
        log(f"  removed {path}, left by an interrupted fetch")


def check_writable(dest: Path, title: str) -> None:
    """Refuse, before anything is written, a destination that cannot be made: the nearest directory on
    its way that exists is not a directory or not writable (os.access writes nothing; root passes it
    everywhere but on a read-only filesystem, which is what root's own writes would meet)."""
    existing = nearest_existing(dest.parent)
    if not existing.is_dir():
        reason = "not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = "a read-only filesystem" if os.statvfs(existing).f_flag & os.ST_RDONLY else "not writable"
    else:
        return
    raise UserError(f"{title} cannot be written to {dest}: {existing} is {reason}; {WRITABLE_HINT}")


def make_dirs(directory: Path) -> list[Path]:
    """mkdir -p `directory`; the directories it created, outermost first."""
    created = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        created.insert(0, path)
    directory.mkdir(parents=True, exist_ok=True)
    return created


def unmake_dirs(created: list[Path], lock_file: str) -> None:
    """Remove the directories a failed fetch made while they hold nothing but its lock file (a waiting
    fetch sees the lock file gone and takes a new one; filelock checks for that)."""
    if not created or any(p.name != Path(lock_file).name for p in created[-1].iterdir()):
        return
    Path(lock_file).unlink(missing_ok=True)
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:  # something else arrived meanwhile: it stays
            return
