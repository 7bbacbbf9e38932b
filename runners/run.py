"""One experiment from its resolved spec (runners/spec.py): find or create its run directory, skip,
resume or train, and keep the records true at every instant."""
from __future__ import annotations

import platform
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
from hydra.utils import get_class

from results import records
from results.errors import UserError
from results.status import RunStatus
from results.targets import Target, epochs_to_target
from results.tuning import trial_score
from suites.base import fabricated_at

from .checks import model_problems
from .config import RunConf
from .engine import fit, select_device
from .lr_find import find_lr
from .preflight import check_writable, nothing_left_if_refused
from .profile import Profile
from .run_files import RunFiles, now
from .run_lock import RunLock
from .schedules import BUDGET_FREE
from .spec import RunSpec

def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
            "device_name": name, "python": platform.python_version(), "host": socket.gethostname(),
            "git_sha": git_sha(), "command": " ".join(sys.argv),
            # Not in the run id (records.OUTPUT_ONLY_KEYS: the grid sets it per worker, and on CPU it
            # changes only the order of float sums), so recorded: a rerun's difference can be traced to it.
            "threads": torch.get_num_threads()}


def summarise(rows: list[dict], target: Target) -> dict:
    # Every metric of any row: end-of-run metrics (Task.evaluate_final) are in the last row only.
    metrics = list(dict.fromkeys(k for r in rows for k in r
                                 if k not in ("epoch", "step", "wall_s", "lr", "momentum", "lr_trace")))
    best = {}
    for key in metrics:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if values:
            lower_better = key.endswith(("loss", "ppl")) or (key == target.metric and target.mode == "min")
            best[key] = min(values) if lower_better else max(values)
    final = {k: rows[-1].get(k) for k in metrics} if rows else {}
    return {"epochs_to_target": epochs_to_target(rows, target), "best": best, "final": final,
            "target_met_at_end": bool(rows) and target.is_met(rows[-1].get(target.metric))}


def with_pretrained(spec: RunSpec) -> RunSpec:
    """The spec with its task's `pretrained_path`: the final checkpoint of the pre-training run it names
    (runners/spec.py pretrain_spec), trained first or found by its run id. Called once this run's lock is
    held; the run id depends on the pretrain block, never on where the checkpoint lies."""
    if spec.pretrain is None:
        return spec
    status = execute(spec.pretrain)  # parallel grid workers: one trains it (the run's lock), the others find it
    path = spec.pretrain.path
    if status["status"] != "completed":
        raise UserError(f"the pre-training run {path} ended {status['status']} ({status.get('message')}); "
                        f"fix its task.pretrain settings")
    print(f"{spec.run.task.name}: starting from pre-training run {path}", file=sys.stderr)
    return spec.with_task(pretrained_path=str(path / records.CHECKPOINT_FILE))


def make_task(spec: RunSpec, device: torch.device):
    return get_class(spec.run.task._target_)(spec.run.task, device)


def execute(spec: RunSpec, after_epoch=None) -> dict:
    """Own the run `spec` describes, to its final status: skip it when it has finished, resume it when
    interrupted, train it otherwise — as its one writer (runners/run_lock.py); a pre-training run it
    depends on first. Returns its status (as written to status.json). Bad input raises UserError before
    anything is written: a refusal met once directories or the lock were made (a task without the
    target's metric) removes them again."""
    path, run = spec.path, spec.run
    with nothing_left_if_refused(path.parent):
        check_writable(run.results_dir)
        with RunLock(path):
            files = RunFiles(path)
            # force=true, or records left without their status (RunFiles.is_orphaned): trained afresh, the
            # old files moved aside (never deleted) once the run's own checks have passed (train_run).
            afresh = bool(run.force and path.exists()) or files.is_orphaned()
            previous = None if afresh else files.read_state()
            if previous and previous["status"] in records.FINAL_STATUSES:
                print(f"run {path.name} already {previous['status']}; not training again (force=true "
                      f"reruns it)", file=sys.stderr)
                return previous
            return train_run(spec, files, previous, after_epoch, afresh)


def prepare(spec: RunSpec, files: RunFiles, afresh: bool):
    """The run's task, device and LR (with its origin), once what only the built task can tell is
    checked (its metrics, its model); then, for a run trained afresh, the old directory moved aside."""
    run = spec.run
    if run.threads:
        torch.set_num_threads(run.threads)  # e.g. 1 per worker when grid jobs share a CPU
    device = select_device(run.device)
    spec = with_pretrained(spec)
    task = make_task(spec, device)
    target = run.task.target
    if target.metric not in task.metrics:
        raise UserError(f"task.target.metric={target.metric!r} is not a metric of task {run.task.name!r};"
                        f" it produces {list(task.metrics)}")
    problems = model_problems(task, run, spec.lr.value if spec.lr else 1.0)
    if problems:
        raise UserError(problems[0])
    check_data_kind(run.suite, fabricated_needs(run))
    lr = spec.lr or find_lr(spec, task, device)  # after the checks: the LR range test trains
    if afresh:
        why = "force=true" if run.force else f"records without a {records.STATUS_FILE} (a damaged run)"
        print(f"{why}: moved the earlier run to {files.move_aside()}", file=sys.stderr)
    return task, device, lr


def fabricated_needs(run: RunConf) -> list[str]:
    """The data the run reads that `python -m suites.data fake` fabricated (a marker file beside it)."""
    return [str(need.path) for need in run.task.data_needs() if fabricated_at(need.path)]


def check_data_kind(suite: str, fabricated: list[str]) -> None:
    """Fabricated data trains only a rehearsal (records.is_rehearsal), so no real suite's records can
    hold a run that measured nothing."""
    if fabricated and not records.is_rehearsal(suite):
        raise UserError(f"{fabricated[0]} is fabricated data (python -m suites.data fake): only a rehearsal "
                        f"reads it (python -m runners.grid suite=NAME rehearsal=true); point the task at real "
                        f"data (make data)")


def train_run(spec: RunSpec, files: RunFiles, previous: dict | None, after_epoch=None,
              afresh: bool = False) -> dict:
    """Train (or resume) the run whose lock the caller holds, writing its config and status."""
    task, device, lr = prepare(spec, files, afresh)
    run, schedule = spec.run, spec.schedule
    target = run.task.target
    files.path.mkdir(parents=True, exist_ok=True)
    files.keep_epoch_checkpoints = run.keep_epoch_checkpoints
    records.write_text_atomic(files.path / records.CONFIG_FILE, spec.config_yaml())
    if previous is not None:
        files.log_resume(previous)
    header = RunStatus(
        run_id=files.path.name, suite=run.suite, task=run.task.name, recipe=run.recipe,
        optimizer=run.optimizer.name, schedule=schedule["name"], schedule_kind=schedule["kind"], seed=run.seed,
        epochs=run.epochs, max_epochs=run.task.epochs, budget_free=BUDGET_FREE[schedule["kind"]],
        lr=lr.as_dict(), weight_decay=run.optimizer.weight_decay, clip_grad=spec.clip_grad.as_dict(),
        split=getattr(run.task, "split", "test"), trial=run.tuning_trial, target=target.as_dict(),
        environment=environment(device), fabricated_data=bool(fabricated_needs(run)),
        started=(previous or {}).get("started", now()),
        branched_from=(previous or {}).get("branched_from"))  # a WSD branch seeded from its trunk
    files.write_status(header.record())
    files.hold_ballast()
    profile = Profile(device)

    def ended() -> dict:  # what the status adds once the run has ended, whichever way
        measured = profile.as_dict(files.checkpoint_path, getattr(run.task, "batch_size", None))
        return {"ended": now(), "epochs_done": len(files.rows), **summarise(files.rows, target),
                "profile": {**measured, "device_name": header.environment["device_name"]}}

    try:
        outcome = fit(task, run, lr.value, dict(schedule), files, after_epoch, profile)
    except Exception as exc:
        oom = isinstance(exc, torch.OutOfMemoryError)
        error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        failed = replace(header, status="failed", error=f"{'out of memory: ' if oom else ''}{error}", **ended())
        files.write_final_status(failed.record())
        raise
    status = replace(header, status=outcome.status, message=outcome.message, **ended())
    if run.tuning_trial is not None:  # results/tuning.py: the one definition of a trial's score
        status = replace(status, study=f"{run.task.name}/{run.optimizer.name}/{schedule['name']}",
                         score=trial_score(status.record(), files.rows))
    files.write_final_status(status.record())
    # The records say all; a grid of ResNet-50 checkpoints would fill disks. A halted run resumes from it.
    if not run.keep_checkpoint and outcome.status != "halted":
        files.checkpoint_path.unlink(missing_ok=True)
    return status.record()
