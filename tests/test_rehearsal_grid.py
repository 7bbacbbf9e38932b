"""The rehearsal end to end (runners/grid/rehearsal.py): CI's full-size checks. The nightly suite at full
model size on fabricated data, killed mid-run and rerun — nothing trained twice —, its marked page and
gate; and one cell of each blog claim at full size, through tuning, budget search, stages and the LMs'
final evaluation. A full-size config that no longer composes, trains, checkpoints, resumes or reports
fails here."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from results import records
from suites.data.__main__ import main as data_main

pytestmark = pytest.mark.full_size  # minutes at full size: `make test-full-size`, CI's second step


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rehearsal") / "data"
    assert data_main(["fake", "suite=blog", f"data_root={root}"]) == 0
    return root


def grid_command(results: Path, data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "runners.grid", *args, "rehearsal=true", f"grid.rehearsal.data_root={data}",
            f"results_dir={results}"]


def run(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def mid_run(runs: Path) -> bool:
    """Some run has recorded an epoch and is still training (killed now, it must resume)."""
    for status_path in runs.glob("*/status.json"):
        try:
            status = json.loads(status_path.read_text())
            rows = (status_path.parent / records.METRICS_FILE).read_text().count("\n")
        except (OSError, ValueError):
            continue
        if status.get("status") == "running" and rows >= 1:
            return True
    return False


def snapshot(runs: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in runs.glob("*/status.json")}


def test_nightly_rehearsal_killed_mid_run_resumes_trains_nothing_twice_and_reports(tmp_path, fabricated):
    results, runs = tmp_path / "results", tmp_path / "results" / "runs" / "nightly-rehearsal"
    command = grid_command(results, fabricated, "suite=nightly")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not mid_run(runs):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the grid and anything it started, without warning
    proc.wait()
    before = snapshot(runs)
    finished = {name for name, text in before.items() if json.loads(text)["status"] == "completed"}
    interrupted = set(before) - finished
    assert interrupted, "the kill came after every run had ended"

    rerun = run(command)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for name in finished:  # a finished run is never trained again: its records are as they were
        assert (runs / name / "status.json").read_text() == before[name]
    for path in (p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):  # not locks
        # every run whole, each epoch recorded once
        status = json.loads((path / "status.json").read_text())
        epochs = [r["epoch"] for r in records.read_metrics(path / records.METRICS_FILE)]
        assert status["status"] == "completed" and epochs == list(range(1, status["epochs"] + 1))
        assert status["fabricated_data"] is True and status["profile"]["flops_per_step"] > 0
    for name in interrupted:  # resumed from its checkpoint, not trained from the start
        lines = (runs / name / records.RESUMES_FILE).read_text().splitlines()
        resumes = [json.loads(line) for line in lines]
        assert [r["after"] for r in resumes] == ["running"] and resumes[0]["epochs_done"] >= 1
    cells = [json.loads(p.read_text()) for p in (results / "grids" / "nightly-rehearsal" / "cells").glob("*.json")]
    actions = {r["run_id"]: r["action"] for cell in cells for r in cell["probes"]}
    assert all(actions[name] == "cached" for name in finished if name in actions)
    assert {actions[name] for name in interrupted if name in actions} <= {"resumed"}
    info = json.loads((results / "grids" / "nightly-rehearsal" / "rehearsal.json").read_text())
    spec = info["tasks"]["cifar10_wrn22"]
    assert info["caps"]["epochs"] == 2 and (spec["full_batch_size"], spec["batch_size"]) == (128, 4)
    # The full-size suite's plan (its 30- and 200-epoch recipes, its search), not the rehearsal's 2 epochs.
    assert spec["planned_epochs"] > 230 and spec["assumed_epoch_s"] == 8.0
    # Found by the rehearsal: a published recipe's cell ran a budget search (probes 1, 2, ...) instead of
    # one run at its own budget — the job's grid section, composed afresh, overrode the cell's.
    recipe_cells = [cell for cell in cells if cell["recipe"]]
    assert {cell["recipe"] for cell in recipe_cells} == {"cifar10_blog", "cifar10_wrn_paper"}
    assert all([p["budget"] for p in cell["probes"]] == [2] for cell in recipe_cells)

    page = run([sys.executable, "-m", "report", "suite=nightly-rehearsal", f"results_dir={results}",
                "screenshot=false"])
    assert page.returncode == 0, page.stderr
    html = (results / "reports" / "nightly-rehearsal" / "index.html").read_text()
    assert html.count("rehearsal: fabricated data, not a measurement") >= 3
    gate = run([sys.executable, "-m", "report", "check", "suite=nightly-rehearsal", f"results_dir={results}"])
    assert gate.returncode == 0, gate.stdout + gate.stderr


BLOG_CLAIMS = ("cifar10_wrn22", "cars_resnet50", "awd_lstm_wt2", "qrnn_wt2")


def test_one_cell_of_each_blog_claim_at_full_size(tmp_path, fabricated):
    """AdamW + 1cycle, seed 0, on each claim's task: a one-trial study, then the budget search; plus the
    blog's published run of each claim (the Cars stages, the LMs' batch-1 final evaluation)."""
    results = tmp_path / "results"
    recipes = "{cifar10_wrn22:[cifar10_blog],cars_resnet50:[cars_blog],awd_lstm_wt2:[awd_lstm_blog]," \
              "qrnn_wt2:[qrnn_blog]}"
    done = run(grid_command(results, fabricated, "suite=blog", "optimizer=adamw", "schedule=one_cycle",
                            "seed=0", f"grid.recipes={recipes}", "grid.rehearsal.trials=1"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = [json.loads(p.read_text()) for p in (results / "runs" / "blog-rehearsal").glob("*/status.json")]
    assert {s["task"] for s in statuses} == set(BLOG_CLAIMS)
    assert {s["recipe"] for s in statuses} >= {"cifar10_blog", "cars_blog", "awd_lstm_blog", "qrnn_blog"}
    assert all(s["status"] == "completed" for s in statuses)
    finals = {s["task"]: s["final"] for s in statuses if s["recipe"]}
    assert all(k in finals["awd_lstm_wt2"] for k in ("val_ppl_blog", "test_ppl_blog"))
    trials = list((results / "runs" / "blog-rehearsal-tuning").glob("*/status.json"))
    assert len(trials) == len(BLOG_CLAIMS)  # one trial a study, each on the validation split
    page = run([sys.executable, "-m", "report", "suite=blog-rehearsal", f"results_dir={results}",
                "screenshot=false"])
    assert page.returncode == 0, page.stderr
