"""The grid end to end on a reduced mini suite (digits_resnet, 1 seed, 2 optimizers x 2 schedules, tiny
net and budget): basic, joblib and submitit-local launchers, plan mode, bad input, SIGKILL + rerun."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from results import records
from results.targets import seed_epochs_to_target

ROOT = Path(__file__).resolve().parents[1]
REDUCED = ["suite=mini", "task=digits_resnet", "optimizer=adamw,sgd", "schedule=one_cycle,reference",
           "seed=0", "task.width=8", "task.blocks=1", "task.epochs=2", "task.target.value=0.3",
           "task.test_size=1000", "grid.tuning.trials=0"]  # tuning: its own test below


def grid(results: Path, *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runners.grid", *REDUCED, f"results_dir={results}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def cell_records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "grids/mini/cells").glob("*.json"))]


def check_complete(results: Path, optimizers=("adamw", "sgd")) -> list[dict]:
    """Every cell has a record, every probe a final run with whole metrics, and no run is orphaned."""
    cells = cell_records(results)
    assert sorted(c["cell"] for c in cells) == sorted(
        f"digits_resnet/{o}/{s}/seed0" for o in optimizers for s in ("one_cycle", "reference"))
    referenced = set()
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        assert cell["lr"]["origin"] == f"task.lr[{cell['optimizer']}]"
        statuses = []
        for probe in cell["probes"]:
            run = records.load_run(results / "runs/mini" / probe["run_id"])
            assert run.status["status"] in records.FINAL_STATUSES
            assert run.status["epochs"] == probe["budget"]
            assert [r["epoch"] for r in run.metrics] == list(range(1, run.status["epochs_done"] + 1))
            statuses.append(run.status)
            referenced.add(probe["run_id"])
        completed = [s for s in statuses if s["status"] == "completed"]
        assert cell["epochs_to_target"] == seed_epochs_to_target(completed).epochs
        if cell["budget_free"]:
            assert [p["budget"] for p in cell["probes"]] == [2]
        else:
            assert [p["budget"] for p in cell["probes"]][:1] == [1]
    run_dirs = {p.name for p in records.iter_run_dirs(results, "mini")}
    assert run_dirs == referenced, "no duplicate, stray or moved-aside run directory"
    return cells


def test_basic_launcher_then_rerun_trains_nothing_and_plan_says_done(tmp_path):
    out = grid(tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "summary of suite mini" in out.stdout and "failures: 0" in out.stdout
    cells = check_complete(tmp_path)
    assert sum(c["runs_trained"] for c in cells) == sum(len(c["probes"]) for c in cells)

    again = grid(tmp_path)
    assert again.returncode == 0 and "trained or resumed this time: 0" in again.stdout
    def without_action(cells):
        return [[{k: v for k, v in p.items() if k not in ("action", "epochs_trained")} for p in c["probes"]]
                for c in cells]

    again_cells = cell_records(tmp_path)
    assert without_action(again_cells) == without_action(cells)
    assert {p["action"] for c in again_cells for p in c["probes"]} == {"cached"}
    assert {p["epochs_trained"] for c in again_cells for p in c["probes"]} == {0}

    plan = grid(tmp_path, "plan=true")
    assert plan.returncode == 0 and " 0 to resume, 0 to do" in plan.stdout and "~0 epochs left" in plan.stdout


@pytest.mark.parametrize("launcher", ["local_parallel", "submitit_local"])
def test_parallel_launchers_produce_complete_records(tmp_path, launcher):
    args = [f"hydra/launcher={launcher}"]
    if launcher == "submitit_local":
        args += ["hydra.launcher.timeout_min=10"]
    out = grid(tmp_path, *args)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    check_complete(tmp_path)


def test_one_multirun_runs_two_tasks_side_by_side(tmp_path):
    """A suite is one multirun over all its tasks: with two joblib workers, a digits_resnet job and a
    digits_wrn job run at the same time (no per-task barrier)."""
    out = subprocess.run([sys.executable, "-m", "runners.grid", "suite=mini", "task=digits_resnet,digits_wrn",
                          "optimizer=adamw", "schedule=reference", "seed=0", "task.epochs=2",
                          "task.test_size=1000", "grid.tuning.trials=0", "hydra/launcher=local_parallel",
                          "hydra.launcher.n_jobs=2",
                          f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "2 cells in one multirun over 2 task(s)" in out.stdout
    spans = {c["task"]: (c["started"], c["ended"]) for c in cell_records(tmp_path)}
    (a_start, a_end), (b_start, b_end) = spans["digits_resnet"], spans["digits_wrn"]
    assert a_start < b_end and b_start < a_end, spans  # ISO timestamps in UTC compare as text


def test_sigkill_mid_grid_then_rerun_completes_every_run_once(tmp_path):
    # A wider net than REDUCED's, so that a run lasts long enough (~1 s) to be caught mid-flight.
    proc = subprocess.Popen([sys.executable, "-m", "runners.grid", *REDUCED, "task.width=24",
                             f"results_dir={tmp_path}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:  # kill once a run has recorded an epoch but not finished: an interrupted run to resume
        while time.time() < deadline and proc.poll() is None:
            running = [p for p in (tmp_path / "runs/mini").glob("*/status.json")
                       if json.loads(p.read_text() or "{}").get("status") == "running"
                       and (p.parent / "metrics.jsonl").exists()]
            done = list((tmp_path / "grids/mini/cells").glob("*.json"))
            if running and done:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the grid finished before it could be killed"
    interrupted = [p.parent for p in (tmp_path / "runs/mini").glob("*/status.json")
                   if json.loads(p.read_text())["status"] == "running"]
    assert interrupted

    rerun = grid(tmp_path, "task.width=24")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    check_complete(tmp_path)
    for path in interrupted:
        assert (path / records.RESUMES_FILE).exists()
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/mini/*/*")}

    last = grid(tmp_path, "task.width=24")
    assert last.returncode == 0 and "trained or resumed this time: 0" in last.stdout
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/mini/*/*")} == mtimes


def test_two_grids_and_two_trains_on_one_results_dir_write_every_run_once(tmp_path):
    """Issue 12's stress: every writer races for the same runs; each run is trained by one of them, its
    records are whole, and the report counts each once."""
    from report.load import load_suite

    train = [sys.executable, "-m", "runners.train", "task.width=8", "task.blocks=1", "epochs=3",
             "progress=false", "deterministic=true", f"results_dir={tmp_path}"]
    adamw_only = [a for a in REDUCED if not a.startswith("optimizer=")] + ["optimizer=adamw"]
    procs = [subprocess.Popen([sys.executable, "-m", "runners.grid", *adamw_only, f"results_dir={tmp_path}"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    procs += [subprocess.Popen(train, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _, err in outs]
    assert all("failures: 0" in out for out, _ in outs[:2])
    cells = check_complete(tmp_path, optimizers=("adamw",))
    mini = load_suite("mini", tmp_path)
    assert not mini.problems and len(mini.runs) == len({p["run_id"] for c in cells for p in c["probes"]})
    (adhoc,) = records.iter_run_dirs(tmp_path, "adhoc")
    assert [r["epoch"] for r in records.read_metrics(adhoc / "metrics.jsonl")] == [1, 2, 3]
    assert not (adhoc / records.RESUMES_FILE).exists()  # the second train waited, then skipped
    assert any("already completed" in err for _, err in outs[2:])


def test_plan_trains_nothing(tmp_path):
    plan = subprocess.run([sys.executable, "-m", "runners.grid", "plan=true", "task=digits_resnet",
                           f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("suite=mini: no CUDA device")  # the default, and why
    # 4 optimizers x 2 schedules x the mini suite's 2 seeds
    assert "16 cells" in plan.stdout and "0 done, 0 to resume" in plan.stdout
    assert not (tmp_path / "runs").exists()
    # Bad input (a bad value, an unknown key, an unknown suite): tests/test_bad_input.py.


def test_published_recipes_run_once_at_their_own_budget(tmp_path):
    """The blog suite's recipe cells are the runs as published: one run per seed at the recipe's budget
    (no budget search); a budget-free one (the WRN paper's step schedule) stops at the target."""
    plan = subprocess.run([sys.executable, "-m", "runners.grid", "suite=blog", "plan=true", "task=cifar10_wrn22",
                           "optimizer=adamw", "schedule=one_cycle", "seed=0", f"results_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    lines = {line.split()[0]: line for line in plan.stdout.splitlines() if line.startswith("  cifar10_wrn22/")}
    assert " runs 30:todo " in lines["cifar10_wrn22/+cifar10_blog/seed0"]
    assert " runs 18:todo " in lines["cifar10_wrn22/+cifar10_blog18/seed0"]
    assert " runs 200:todo " in lines["cifar10_wrn22/+cifar10_wrn_paper/seed0"]
    assert " 1:todo 2:todo " in lines["cifar10_wrn22/adamw/one_cycle/seed0"]  # the grid cell still searches
    assert not (tmp_path / "runs").exists()


def test_diverged_cells_are_recorded_and_the_grid_goes_on(tmp_path):
    out = grid(tmp_path, "task.lr.sgd=1e12")  # SGD's cells blow up; AdamW's train as usual
    assert out.returncode == 0, out.stderr
    cells = {c["cell"]: c for c in cell_records(tmp_path)}
    assert len(cells) == 4
    for name, cell in cells.items():
        statuses = {p["status"] for p in cell["probes"]}
        if "/sgd/" in name:
            assert statuses == {"diverged"} and cell["censored"] and cell["epochs_to_target"] is None
        else:
            assert statuses == {"completed"}
    assert "failures: 0" in out.stdout  # a divergence is a result (censored), not a failure


def test_tuned_cells_run_their_seeds_at_the_studys_best_values(tmp_path):
    """grid.tuning: each (task, optimizer, schedule) study runs its trials on the validation split first;
    the cell's runs then use the best trial's LR and WD; the plan prices what is left of the tuning."""
    args = [a for a in REDUCED if not a.startswith(("optimizer=", "grid.tuning"))] + [
        "optimizer=adamw", "grid.tuning.trials=2"]
    run = lambda *extra: subprocess.run([sys.executable, "-m", "runners.grid", *args, *extra,  # noqa: E731
                                         f"results_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=400)
    plan = run("plan=true")
    assert plan.returncode == 0 and "tuning (to run)" in plan.stdout, plan.stderr
    assert "tuning: 2 studies x 2 trials: ~" in plan.stdout
    out = run()
    assert out.returncode == 0 and "failures: 0" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    for cell in cell_records(tmp_path):
        assert cell["tuned"] and cell["tuning"]["trials"] == 2 and cell["tuning"]["split"] == "validation"
        for probe in cell["probes"]:
            status = records.load_run(tmp_path / "runs/mini" / probe["run_id"]).status
            assert status["lr"]["value"] == cell["tuning"]["lr"] and status["split"] == "test"
            assert status["weight_decay"] == cell["tuning"]["weight_decay"]
    trials = [records.load_run(p).status for p in records.iter_run_dirs(tmp_path, "mini-tuning")]
    assert len(trials) == 4 and {t["split"] for t in trials} == {"validation"}
    assert {t["target"]["metric"] for t in trials} == {"val_acc"} and all(t["score"] is not None for t in trials)
    again = run("plan=true")
    assert "trials: ~0 epochs left (with" in again.stdout and "tuning (to run)" not in again.stdout
