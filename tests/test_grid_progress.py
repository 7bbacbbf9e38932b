"""The grid's progress line (runners/grid/progress.py): counts, ETA arithmetic and pricing from a
fabricated launch plan and progress files, its failures never failing a cell, and the lines of a reduced
mini grid end to end."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from results import records
from runners.grid import progress
from runners.grid.progress import duration, estimate, progress_line, read_progress, report_progress, start_progress

from test_grid import REDUCED, ROOT, cell_records
from test_report_fixtures import cell_record

STARTED = 1_000_000.0


def launch(directory: Path, cells: list[tuple[str, float]], workers: int = 1, configured=None,
           measured=None) -> Path:
    """A fabricated launch plan: (task, planned epochs) per cell."""
    records.write_json_atomic(directory / progress.PLAN_FILE, {
        "started": STARTED, "workers": workers, "cells": [{"task": t, "epochs": e} for t, e in cells],
        "configured": configured or {}, "measured": measured or {}})
    return directory


def ended(directory: Path, index: int, task: str, status: str = "ok", runs: int = 1, epochs: int = 0,
          wall_s: float = 0.0, epoch_seconds=()) -> None:
    records.write_json_atomic(directory / f"{index}.json", {
        "cell": f"{task}/x/y/seed{index}", "task": task, "status": status, "runs_trained": runs,
        "epochs_trained": epochs, "wall_s": wall_s, "epoch_seconds": list(epoch_seconds)})


def test_counts_cells_failures_runs_and_elapsed(tmp_path):
    d = launch(tmp_path, [("a", 10), ("a", 10), ("b", 20), ("b", 20)], configured={"a": 1.0, "b": 1.0})
    ended(d, 0, "a", runs=0)
    ended(d, 2, "b", status="failed", runs=1)
    ended(d, 7, "b", runs=5)  # not a cell of this plan: ignored
    line = progress_line(d, now=STARTED + 3725)
    assert line.startswith("[grid] progress: 2/4 cells (1 failed) | 1 run trained | 1h02m elapsed | ETA ~30s")
    ended(d, 1, "a", runs=2)
    ended(d, 3, "b")
    assert progress_line(d, now=STARTED + 65) == (
        "[grid] progress: 4/4 cells (1 failed) | 4 runs trained | 1m05s elapsed | done")


def test_eta_prices_measured_before_configured_and_divides_by_busy_workers(tmp_path):
    cells = [("a", 10), ("b", 20), ("b", 0)]
    d = launch(tmp_path, cells, configured={"a": 2.0, "b": 3.0}, measured={"a": [4.0, 5.0, 6.0]})
    plan, done = read_progress(d)
    # a: 10 epochs x 5.0 s (median measured, not the configured 2.0); b: 20 x 3.0 s configured
    assert estimate(plan, done) == (110.0, ["a 5.0 s measured", "b 3.0 s configured"], [])
    assert "ETA ~1m50s (1 worker; epoch times: a 5.0 s measured, b 3.0 s configured)" in progress_line(d)
    plan["workers"] = 2
    assert estimate(plan, done)[0] == 55.0
    plan["workers"] = 8  # 3 cells left: at most 3 workers busy
    assert estimate(plan, done)[0] == 110.0 / 3
    # A cell of this launch measures its runs: they join the launch's measured times (median of 4, 5, 6, 100).
    ended(d, 1, "b", epoch_seconds=[9.0, 9.0])
    ended(d, 2, "a", epoch_seconds=[100.0])
    plan, done = read_progress(d)
    assert estimate(plan, done) == (10 * 5.5, ["a 5.5 s measured"], [])


def test_eta_unknown_without_any_epoch_time_then_from_the_observed_rate(tmp_path):
    d = launch(tmp_path, [("a", 10), ("b", 20), ("a", 10)])
    assert progress_line(d, now=STARTED).endswith("| ETA unknown (no epoch time for a, b)")
    ended(d, 2, "a", epochs=4, wall_s=20.0)  # no run completed (no measured time): 5 s per epoch observed
    assert estimate(*read_progress(d)) == (150.0, ["a 5.0 s observed", "b 5.0 s observed"], [])


def test_eta_names_the_tasks_it_cannot_price(tmp_path):
    d = launch(tmp_path, [("a", 10), ("b", 20)], workers=2, configured={"a": 6.0, "b": None})
    assert progress_line(d).endswith("ETA ~30s (2 workers; epoch times: a 6.0 s configured; "
                                     "excludes no epoch time for b)")


def test_each_launch_counts_only_its_own_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "launch_plan", lambda cells: {
        "started": STARTED, "workers": 1, "cells": [{"task": "a", "epochs": 3}] * 2,
        "configured": {"a": 1.0}, "measured": {}})
    (first_arg,) = start_progress([], tmp_path)
    first = Path(first_arg.split("=", 1)[1])
    ended(first, 0, "a", runs=4)
    ended(first, 1, "a", runs=4)
    assert "2/2 cells | 8 runs trained" in progress_line(first)
    (second_arg,) = start_progress([], tmp_path)  # the relaunch (resume) of the same cells
    second = Path(second_arg.split("=", 1)[1])
    assert second != first and second.parent == first.parent == tmp_path / "progress"
    assert "0/2 cells | 0 runs trained" in progress_line(second)


def test_progress_failures_never_fail_the_cell_nor_the_grid(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    cfg = OmegaConf.create({"results_dir": str(tmp_path), "suite": "mini",
                            "grid": {"progress_dir": str(blocker / "progress"), "cell": 0}})
    record = cell_record("a/x/y/seed0")
    report_progress(cfg, [], record)  # its directory cannot be made: one line on stderr
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[grid] a/x/y/seed0: progress not written to ")

    def broken(cells):
        raise OSError("disk full")

    monkeypatch.setattr(progress, "launch_plan", broken)
    assert start_progress([], tmp_path) == []  # the jobs then run without progress
    assert "launch plan could not be written (disk full)" in capsys.readouterr().err
    report_progress(OmegaConf.create({"grid": {"progress_dir": None, "cell": 0}}), [], record)
    assert capsys.readouterr() == ("", "")


def test_duration():
    assert [duration(s) for s in (0, 42.4, 185, 3600, 7805)] == ["0s", "42s", "3m05s", "1h00m", "2h10m"]


def test_a_reduced_grid_prints_its_progress_from_0_to_all_cells(tmp_path):
    args = [a for a in REDUCED if not a.startswith("optimizer=")] + ["optimizer=adamw"]  # 2 cells
    out = subprocess.run([sys.executable, "-m", "runners.grid", *args, f"results_dir={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("[grid] progress: ")]
    assert len(lines) == 3, out.stdout
    # At launch nothing is measured yet (the mini configures no epoch time); after the first cell its
    # runs' measured epoch times price the second.
    assert lines[0].startswith("[grid] progress: 0/2 cells | 0 runs trained | ")
    assert lines[0].endswith("ETA unknown (no epoch time for digits_resnet)")
    assert re.search(r"^\[grid\] progress: 1/2 cells \| \d runs? trained \| \S+ elapsed \| ETA ~\S+ "
                     r"\(1 worker; epoch times: digits_resnet \d+\.\d s measured\)$", lines[1]), lines[1]
    trained = sum(c["runs_trained"] for c in cell_records(tmp_path))
    assert trained >= 2 and re.search(rf"^\[grid\] progress: 2/2 cells \| {trained} runs trained \| \S+ "
                                      r"elapsed \| done$", lines[2]), lines[2]
    (directory,) = (tmp_path / "grids/mini/launches").glob("*/progress/*")
    assert sorted(p.name for p in directory.iterdir()) == ["0.json", "1.json", "plan.json"]
    assert {json.loads((directory / f"{i}.json").read_text())["status"] for i in (0, 1)} == {"ok"}


def test_launch_plan_prices_each_pending_study_once_on_its_first_cell(tmp_path):
    from runners.grid.cells import cell_overrides, compose_many
    from runners.grid.plan import plan_cell

    args = [a for a in REDUCED if not a.startswith(("optimizer=", "schedule=", "seed=", "grid.tuning"))] + [
        "optimizer=adamw", "schedule=one_cycle,reference", "seed=0,1", "grid.tuning.trials=3", "grid.n_workers=2",
        f"results_dir={tmp_path}"]
    cells = compose_many(cell_overrides("mini", args)[0])
    plan = progress.launch_plan(cells)
    assert plan["workers"] == 2 and plan["configured"] == {"digits_resnet": None} and plan["measured"] == {}
    extra = [(c.schedule.name, int(c.seed), p["epochs"] - plan_cell(c)["cost"])
             for c, p in zip(cells, plan["cells"])]
    # 3 trials of 1 epoch (half the max of 2) per study; the reference's (budget-free) stop assumed at 1
    assert sorted(extra) == [("one_cycle", 0, 3), ("one_cycle", 1, 0), ("reference", 0, 3), ("reference", 1, 0)]
