"""Nothing a run writes is tracked: a tiny tuned grid and its report, run from a clean checkout's root
with the default results directory, leave `git status --porcelain` as it was (.gitignore covers every
output under results/, Hydra's folders and the data root)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ["suite=mini", "task=digits_resnet", "optimizer=adamw", "schedule=one_cycle", "seed=0",
        "task.width=8", "task.blocks=1", "task.epochs=2", "task.test_size=500", "grid.tuning.trials=1"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_a_grid_and_its_report_leave_a_clean_checkout_clean(tmp_path):
    repo = tmp_path / "checkout"
    # The tracked files that matter to git status: the ignore rules and the package that lives in results/.
    (repo / "results").mkdir(parents=True)
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    for source in (ROOT / "results").glob("*.py"):
        shutil.copy(source, repo / "results" / source.name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clean")
    env = {k: v for k, v in os.environ.items() if k != "ONECYCLE_RESULTS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for command in (["runners.grid", *GRID], ["report", "suite=mini"]):
        proc = subprocess.run([sys.executable, "-m", *command], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode in (0, 1), proc.stderr[-2000:]  # the report's gate may fail a tiny grid
    written = {p.relative_to(repo).parts[1] for p in (repo / "results").iterdir() if p.is_dir()}
    assert {"runs", "grids", "tuning", "reports"} <= written, written  # it did write where we look
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
