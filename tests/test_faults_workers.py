"""A grid's parallel workers end with the grid (issue 21 §5): SIGKILL of the grid process alone — not its
process group, as a closed session or the OOM killer does — leaves no joblib (loky) worker training on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Two budget-free cells of the CPU mini twin, each far longer than the test (a target never met: one run
# of 300 epochs), so that both workers are mid-cell when the grid is killed.
LONG_CELLS = ["suite=mini", "task=digits_resnet", "optimizer=adamw,sgd", "schedule=constant", "seed=0",
              "task.width=8", "task.blocks=1", "task.epochs=300", "task.target.value=1.01",
              "task.test_size=1000", "grid.tuning.trials=0", "hydra/launcher=local_parallel",
              "hydra.launcher.n_jobs=2"]


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def is_worker(pid: int) -> bool:
    try:
        return b"popen_loky_posix" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_killing_the_grid_alone_ends_its_joblib_workers(tmp_path):
    grid = subprocess.Popen([sys.executable, "-m", "runners.grid", *LONG_CELLS, f"results_dir={tmp_path}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    pids: list[int] = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and grid.poll() is None:  # both workers inside a run
            workers = [p for p in children(grid.pid) if is_worker(p)]
            if len(workers) == 2 and len(list(tmp_path.glob("runs/mini/*/status.json"))) == 2:
                break
            time.sleep(0.2)
        assert grid.poll() is None, "the grid ended before its workers could be caught mid-cell"
        pids = children(grid.pid)
        assert len([p for p in pids if is_worker(p)]) == 2
        os.kill(grid.pid, signal.SIGKILL)  # the grid only, as a closed session or the OOM killer would
        grid.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(alive(p) for p in pids):
            time.sleep(0.2)
        assert not [p for p in pids if alive(p)], "processes of the killed grid still running"
    finally:
        try:
            os.killpg(grid.pid, signal.SIGKILL)  # whatever this test started and is left: its group
        except ProcessLookupError:
            pass
        grid.wait()
