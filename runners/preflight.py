"""Before a run or a grid writes: whether its results_dir takes writes, and the undoing of the directories
a refused command created on the way to its refusal — a refused command leaves nothing behind (issue
21), not even the empty results_dir its writability probe made or the runs/<suite>/ its lock needed."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from results import records
from results.errors import UserError

# A results_dir with less free space than this is refused before a run starts: a checkpoint (ResNet-50
# with Adam's moments, ~300 MB) would not fit, and the run would fail at its first epoch's end.
MIN_FREE_BYTES = 64 * 2**20


def missing_dirs(path: Path) -> list[Path]:
    """`path` and those of its ancestors that do not exist yet, deepest first."""
    out = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        out.append(candidate)
    return out


def remove_empty(dirs: list[Path]) -> None:
    """rmdir each of `dirs` (deepest first) while it is empty: one holding anything — another process's
    run, created meanwhile — stays, and so do the ones above it."""
    for directory in dirs:
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


@contextmanager
def nothing_left_if_refused(path: Path) -> Iterator[None]:
    """The directories up to `path` that the block creates are removed again (when empty) if it ends in
    a UserError: what a refusal met after the first mkdir would otherwise leave."""
    created = missing_dirs(Path(path))
    try:
        yield
    except UserError:
        remove_empty(created)
        raise


def check_writable(results_dir: str) -> Path:
    """results_dir exists (made if need be) and takes a real write, with room for a run; else a
    UserError, and a results_dir made here is removed again."""
    root = Path(results_dir)
    with nothing_left_if_refused(root):
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-test-{os.getpid()}"
            try:
                records.write_text_atomic(probe, "x" * 4096)  # real blocks: an empty file fits a full disk
            finally:
                probe.unlink(missing_ok=True)
            free = shutil.disk_usage(root).free
        except OSError as exc:
            raise UserError(f"results_dir={results_dir!r} is not writable ({exc.strerror or exc}); "
                            f"set results_dir=... or ONECYCLE_RESULTS to a writable directory") from None
        if free < MIN_FREE_BYTES:
            raise UserError(f"results_dir={results_dir!r} has {free / 2**20:.1f} MiB free, under the "
                            f"{MIN_FREE_BYTES // 2**20} MiB a run's records and checkpoint need; free "
                            f"some space")
    return root
