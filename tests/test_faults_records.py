"""Damaged records and refused runs (issue 21 §4-§5): an unreadable metrics.jsonl is one error line, a
run whose status.json was deleted is moved aside (never overwritten), the threads a run used are
recorded, and a refused run's lock file goes without letting two writers in."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import filelock
import pytest

from conftest import TINY, compose_cfg, execute_at, run_cli
from results import records
from results.errors import UserError

RUN = [*TINY, "device=cpu", "deterministic=true", "task.epochs=2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A completed 2-epoch run's results dir, copied by each test that damages it."""
    results = tmp_path_factory.mktemp("finished") / "results"
    execute_at(compose_cfg([*RUN, f"results_dir={results}"]))
    return results


def copy_of(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(finished, results)
    return results, records.iter_run_dirs(results, "adhoc")[0]


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


@pytest.mark.parametrize("damage", [
    lambda p: (p / "metrics.jsonl").write_bytes(b'{"epoch": 1, "x": "\xff\xfe"}\n'),
    lambda p: ((p / "metrics.jsonl").unlink(), (p / "metrics.jsonl").mkdir()),
], ids=["non-utf8", "directory"])
def test_an_unreadable_metrics_file_is_one_error_line_and_nothing_changes(finished, tmp_path, damage):
    results, path = copy_of(finished, tmp_path)
    damage(path)
    before = snapshot(results)
    proc = run_cli([*RUN, f"results_dir={results}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "metrics.jsonl" in lines[0], proc.stderr
    assert "force=true" in lines[0]
    assert snapshot(results) == before


def test_the_grid_sees_an_unreadable_run_as_corrupt(finished, tmp_path):
    from runners.grid.search import read_status, rows_in

    _, path = copy_of(finished, tmp_path)
    (path / "metrics.jsonl").write_bytes(b"\xff\n")
    assert read_status(path) == {"status": "corrupt"} and rows_in(path) == 0


def test_a_deleted_status_moves_the_old_records_aside_and_trains_again(finished, tmp_path, capsys):
    results, path = copy_of(finished, tmp_path)
    (path / "status.json").unlink()
    old_metrics = (path / "metrics.jsonl").read_bytes()
    status = execute_at(compose_cfg([*RUN, f"results_dir={results}"]))
    assert status == path and json.loads((path / "status.json").read_text())["status"] == "completed"
    assert "records without a status.json" in capsys.readouterr().err
    (aside,) = path.parent.glob(f".{path.name}.replaced-*")
    assert (aside / "metrics.jsonl").read_bytes() == old_metrics  # kept whole, not overwritten
    assert not (path / records.RESUMES_FILE).exists()  # a new run, not a resume of untrusted files
    assert len(records.read_metrics(path / "metrics.jsonl")) == 2


def test_the_threads_a_run_used_are_recorded(tmp_path, one_thread):
    path = execute_at(compose_cfg([*RUN, f"results_dir={tmp_path}", "task.epochs=1"]))
    assert json.loads((path / "status.json").read_text())["environment"]["threads"] == 1


def test_the_threads_of_a_resume_are_recorded(finished, tmp_path, one_thread):
    results, path = copy_of(finished, tmp_path)
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "status": "running"}))
    execute_at(compose_cfg([*RUN, f"results_dir={results}"]))
    assert json.loads((path / records.RESUMES_FILE).read_text())["threads"] == 1


def test_a_refused_run_removes_its_lock_yet_a_waiter_never_shares_it(tmp_path):
    """The holder records nothing and lets go, removing the lock file; the writer that waited on it must
    then hold the lock of the path's file, so that a third writer cannot enter beside it."""
    from runners.run_lock import RunLock

    run_dir = tmp_path / "runs" / "s" / "abc"
    holder = RunLock(run_dir).__enter__()
    entered, leave = threading.Event(), threading.Event()

    def waiter():
        with RunLock(run_dir):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.5)
    holder.__exit__(None, None, None)  # nothing recorded: the lock file goes
    assert entered.wait(10)
    third = filelock.FileLock(holder.lock_path)
    with pytest.raises(filelock.Timeout):
        third.acquire(timeout=0.2)  # the waiter holds the file at the path, not an unlinked one
    leave.set()
    thread.join(10)
    assert not os.path.lexists(holder.lock_path) and not run_dir.parent.joinpath(".abc.owner").exists()


def test_a_refusal_under_the_lock_leaves_no_directory(tmp_path):
    cfg = compose_cfg([*RUN, f"results_dir={tmp_path / 'results'}", "task.target.metric=foo"])
    from runners.run import execute
    from runners.spec import resolve_run

    with pytest.raises(UserError, match="task.target.metric='foo' is not a metric"):
        execute(resolve_run(cfg))
    assert not (tmp_path / "results").exists()
