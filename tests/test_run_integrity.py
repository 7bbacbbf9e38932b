"""Records nothing can corrupt: one writer per run, broken finished runs refused on read, a cut first
line, a full disk, file modes, error lines kept whole, caches under results_dir."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, compose_cfg, execute_at
from results import records
from results.errors import DatasetMissing, UserError

VOLATILE = {"started", "ended", "environment", "profile"}  # profile: timings, memory


def run(results, *overrides):
    return execute_at(compose_cfg([*TINY, f"results_dir={results}", *overrides]))


def status_of(path: Path) -> dict:
    return json.loads((path / records.STATUS_FILE).read_text())


def rows_of(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"}
            for r in records.read_metrics(path / records.METRICS_FILE)]


def test_lock_makes_a_second_writer_wait_and_dies_with_its_holder(tmp_path, capfd):
    from runners.run_lock import RunLock

    run_dir = tmp_path / "runs" / "s" / "abc"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from runners.run_lock import RunLock\n"
        f"with RunLock(Path({str(run_dir)!r})):\n print('held', flush=True); time.sleep(60)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    entered = threading.Event()

    def second_writer():
        with RunLock(run_dir) as taken:
            entered.set()
            assert f"pid {os.getpid()}" in taken.owner()

    waiter = threading.Thread(target=second_writer)
    waiter.start()
    time.sleep(1.0)
    assert not entered.is_set()  # held: no second writer
    assert f"run abc is being trained by host {socket.gethostname()} pid {holder.pid}" in capfd.readouterr().err
    holder.kill()  # SIGKILL: the kernel drops the lock with its process, nothing stale remains
    holder.wait()
    waiter.join(timeout=10)
    assert entered.is_set() and not (run_dir.parent / ".abc.owner").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed 4-epoch run's results dir, copied by each test that damages it."""
    results = tmp_path_factory.mktemp("finished") / "results"
    run(results, "epochs=4")
    return results


@pytest.mark.parametrize("damage,match", [
    (lambda p: os.truncate(p / "metrics.jsonl", 2000), "holds 3 whole rows"),
    (lambda p: (p / "metrics.jsonl").write_text(""), "holds 0 whole rows"),
    (lambda p: (p / "metrics.jsonl").unlink(), "metrics.jsonl is missing"),
    (lambda p: (p / "config.yaml").unlink(), "config.yaml is missing"),
    (lambda p: (p / "config.yaml").write_text((p / "config.yaml").read_text().replace("seed: 0", "seed: 7")),
     "hashes to"),
])
def test_broken_finished_run_is_refused_and_never_counted(finished_run, tmp_path, damage, match):
    from report.load import load_suite

    results = tmp_path / "results"
    shutil.copytree(finished_run, results)
    path = records.iter_run_dirs(results, "adhoc")[0]
    assert len((path / "metrics.jsonl").read_text()) > 2000  # so that truncating cuts row 4
    damage(path)
    with pytest.raises(UserError, match=f"{match}.*force=true"):
        run(results, "epochs=4")
    loaded = load_suite("adhoc", results)
    assert loaded.runs.empty and [p.kind for p in loaded.problems] == ["corrupt"]
    assert match.split()[0] in loaded.problems[0].detail


def test_a_cut_first_metrics_line_is_dropped_on_resume(results, tmp_path):
    clean = run(tmp_path / "clean", "epochs=2", "deterministic=true")
    path = results / "runs" / "adhoc" / clean.name
    path.mkdir(parents=True)
    status = {**status_of(clean), "status": "running", "epochs_done": 0}
    (path / "status.json").write_text(json.dumps(status))  # killed during its first append:
    (path / "metrics.jsonl").write_text('{"epoch": 1, "step": 3, "train_lo')
    assert run(results, "epochs=2", "deterministic=true") == path
    assert rows_of(path) == rows_of(clean)
    assert all(line.endswith("}") for line in (path / "metrics.jsonl").read_text().splitlines())
    # The resume is logged apart from the records, which equal an uninterrupted run's.
    assert json.loads((path / records.RESUMES_FILE).read_text())["epochs_done"] == 0
    assert {k: v for k, v in status_of(path).items() if k not in VOLATILE} == \
        {k: v for k, v in status_of(clean).items() if k not in VOLATILE}


def checkpoint_fsync_fails(monkeypatch):
    """Make the checkpoint's fsync report a full disk, as a real full device does."""
    real = os.fsync

    def fsync(fd):
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return real


def test_full_disk_fails_cleanly_and_the_rerun_resumes(results, monkeypatch):
    checkpoint_fsync_fails(monkeypatch)
    with pytest.raises(UserError, match=r"no space left writing .*checkpoint.pt \(.* MiB free"):
        run(results, "epochs=2")
    path = records.iter_run_dirs(results, "adhoc")[0]
    status = status_of(path)
    assert status["status"] == "failed" and status["error"].startswith("no space left writing")
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]
    assert status["epochs_done"] == len(records.read_metrics(path / "metrics.jsonl"))
    monkeypatch.undo()
    assert run(results, "epochs=2") == path and status_of(path)["status"] == "completed"
    assert len(rows_of(path)) == 2


def test_a_nearly_full_results_dir_is_refused_before_anything_is_written(results, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 2**20))
    with pytest.raises(UserError, match=r"1.0 MiB free, under the 64 MiB"):
        run(results, "epochs=1")
    assert not (results / "runs").exists()


def test_records_get_the_mode_an_ordinary_write_would(tmp_path):
    old = os.umask(0o022)
    try:
        records.write_text_atomic(tmp_path / "a.json", "{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        records.write_text_atomic(tmp_path / "b.json", "{}")
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_resumed_metrics_keep_their_mode(results):
    path = run(results, "epochs=1", "deterministic=true")
    status = {**status_of(path), "status": "running"}
    (path / "status.json").write_text(json.dumps(status))  # as if killed after epoch 1: no checkpoint
    run(results, "epochs=1", "deterministic=true")
    assert (path / "metrics.jsonl").stat().st_mode & 0o077 == 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_grid_keeps_a_missing_dataset_message_whole():
    from runners.grid.job import error_line

    message = "CIFAR-10 is not under /data/cifar10.\n" + "x" * 400 + "\nto get it: make data TASKS=cifar10_wrn22"
    line = error_line(DatasetMissing(message))
    assert "\n" not in line and line.endswith("to get it: make data TASKS=cifar10_wrn22")
    assert error_line(RuntimeError("shape mismatch\nat layer 3")) == "RuntimeError: shape mismatch"


def test_a_task_cache_lives_under_results_dir_not_the_cwd(tmp_path):
    from runners.spec import resolve_run

    cfg = compose_cfg(["task=cars_resnet50", f"results_dir={tmp_path}/r"])
    assert resolve_run(cfg).run.task.cache_dir == f"{tmp_path}/r/cache"
    cfg = compose_cfg(["task=cars_resnet50", f"results_dir={tmp_path}/r", f"task.cache_dir={tmp_path}/c"])
    assert resolve_run(cfg).run.task.cache_dir == f"{tmp_path}/c"
