"""The tuner (runners/grid/tuning.py) on a toy problem with a known best LR (tests/toy_task.py: SGD converges
fastest at lr = 1, diverges beyond 2): it selects inside the good region, resumes a killed study without
running a trial twice, and shares a study between workers without running one trial twice."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from results import records
from results.tuning import trial_score
from toy_task import toy_cell

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def worker(results, trials, step_sleep=0.0):
    return subprocess.Popen([sys.executable, str(TESTS / "toy_task.py"), str(results), str(trials), str(step_sleep)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": f"{TESTS}:{ROOT}"})


def trial_runs(results) -> list[records.RunRecord]:
    return [records.load_run(p) for p in records.iter_run_dirs(results, "toy-tuning")]


def study(results):
    return optuna.load_study(study_name="toy/sgd/constant", storage=f"sqlite:///{results / 'tuning' / 'toy.db'}")


def test_tuning_selects_inside_the_known_good_region(tmp_path, one_thread):
    from runners.grid.tuning import tune

    outcome = tune(toy_cell(str(tmp_path), trials=8))
    assert 0.4 <= outcome["lr"] <= 1.7, outcome  # converged within the budget near lr = 1; > 2 diverges
    assert outcome["trials"] == 8 and outcome["best_score"] < 1e-6 and outcome["space"]["lr"] == [0.1, 10.0]
    runs = trial_runs(tmp_path)
    assert len(runs) == 8 and all(r.status["split"] == "validation" for r in runs)
    assert outcome["cost_epochs"] == sum(r.status["epochs_done"] for r in runs) == 8 * outcome["budget"]
    diverging = [r.status["score"] for r in runs if r.status["lr"]["value"] > 2.05]
    converging = [r.status["score"] for r in runs if r.status["lr"]["value"] < 1.95]
    assert diverging and min(diverging) > max(converging)  # the final validation loss ranks them
    saved = json.loads((tmp_path / "grids/toy/tuning/toy__sgd__constant.json").read_text())
    assert saved == outcome
    assert tune(toy_cell(str(tmp_path), trials=8)) == outcome  # finished: read back, nothing trained
    assert len(trial_runs(tmp_path)) == 8


def test_the_score_reads_the_validation_target_only():
    status = {"status": "completed", "budget_free": False, "max_epochs": 8, "epochs_to_target": None,
              "target": {"metric": "val_acc", "value": 0.9, "mode": "max"}, "final": {"val_acc": 0.95}}
    poisoned = {**status, "final": {"val_acc": 0.95, "test_acc": 1.0}, "best": {"test_acc": 1.0}}
    assert trial_score(status) == trial_score(poisoned) == -0.95
    assert trial_score({**status, "status": "diverged"}) == math.inf
    assert trial_score({**status, "status": "pruned"}) is None


def test_a_killed_study_resumes_without_running_a_trial_twice(tmp_path):
    proc = worker(tmp_path, 4, step_sleep=0.05)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a trial has finished and the next has recorded an epoch
        states = [(records.read_status(p / "status.json") or {}).get("status")
                  for p in records.iter_run_dirs(tmp_path, "toy-tuning")]
        started = [p for p in tmp_path.glob("runs/toy-tuning/*/metrics.jsonl") if p.read_text()]
        if "running" in states and sum(s in records.FINAL_STATUSES for s in states) >= 1 and len(started) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: ((p / "status.json").stat().st_mtime_ns, (p / "status.json").read_text())
                for p in records.iter_run_dirs(tmp_path, "toy-tuning")
                if records.read_status(p / "status.json")["status"] in records.FINAL_STATUSES}
    assert finished and len(finished) < 4
    again = worker(tmp_path, 4, step_sleep=0.05)  # the same cell: the same trial runs
    assert again.wait(timeout=300) == 0, again.stderr.read()[-2000:]
    runs = trial_runs(tmp_path)
    assert len(runs) == 4 and all(r.status["status"] in records.FINAL_STATUSES for r in runs)
    for run in runs:
        if run.path.name in finished:  # never trained again: its status.json untouched (file to file)
            status = run.path / "status.json"
            assert (status.stat().st_mtime_ns, status.read_text()) == finished[run.path.name]
    assert sum((r.path / records.RESUMES_FILE).exists() for r in runs) == 1  # the killed one, resumed
    counted = [t for t in study(tmp_path).trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(counted) == 4 and len({t.user_attrs["run_id"] for t in counted}) == 4


def test_two_workers_share_one_study_and_never_run_the_same_trial(tmp_path):
    procs = [worker(tmp_path, 6, step_sleep=0.01) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert outs[0][0] == outs[1][0]  # both read the same best trial
    trials = study(tmp_path).trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["run_id"] for t in trials}) == 6 and len(trial_runs(tmp_path)) == 6
    assert not any((r.path / records.RESUMES_FILE).exists() for r in trial_runs(tmp_path))
