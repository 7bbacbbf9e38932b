"""One experiment from a composed config: find or create its run directory, skip, resume or train,
and keep the records true at every instant."""
from __future__ import annotations

import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from results import records
from results.errors import UserError
from results.targets import Target, epochs_to_target
from results.tuning import trial_score

from .checks import model_problems
from .config import (RunConf, configured_clip, configured_lr, resolve_schedule, resolved_config, run_path,
                     typed_run, validate)
from .engine import fit, select_device
from .preflight import check_writable, nothing_left_if_refused
from .profile import Profile
from .run_files import RunFiles, now
from .run_lock import RunLock
from .schedules import BUDGET_FREE

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


# Pre-training runs live apart from every suite (a suite's report counts its grid's runs), shared by all.
PRETRAIN_SUITE = "pretrain"
# What the pre-training run takes from the run that needs it: where and how it computes, not what.
PRETRAIN_INHERITS = ("device", "precision", "deterministic", "channels_last", "compile", "threads",
                     "progress", "results_dir")


def with_pretrained(cfg: DictConfig) -> DictConfig:
    """The task's config; for a task with a `pretrain` block (suites/vision/digits_twins.py:PretrainConf)
    that run is trained first, or found by its run id in the same results_dir, and its final checkpoint
    handed over as `task.pretrained_path`. Called once the run id is taken: it depends on the block,
    never on where the checkpoint lies (and a finished run is skipped without looking)."""
    pre = cfg.task.get("pretrain")
    if not pre:
        return cfg.task
    from suites import TASK_SCHEMAS  # a config read back from a grid's cell file has lost the node types

    task = OmegaConf.merge(OmegaConf.structured(TASK_SCHEMAS[pre.task.name]), pre.task)
    run = OmegaConf.merge(OmegaConf.structured(RunConf), {
        "task": task, "optimizer": pre.optimizer, "schedule": pre.schedule, "seed": pre.seed,
        "suite": PRETRAIN_SUITE, "keep_checkpoint": True, **{k: cfg[k] for k in PRETRAIN_INHERITS}})
    status = execute(run)  # parallel grid workers: one trains it (the run's lock), the others then find it
    path = run_path(run)
    if status["status"] != "completed":
        raise UserError(f"the pre-training run {path} ended {status['status']} ({status.get('message')}); "
                        f"fix its task.pretrain settings")
    print(f"{cfg.task.name}: starting from pre-training run {path}", file=sys.stderr)
    return OmegaConf.merge(cfg.task, {"pretrained_path": str(path / records.CHECKPOINT_FILE)})


def task_config(cfg: DictConfig) -> DictConfig:
    """The config the task is built from: the run's, with what is known only once the run id is taken —
    the pre-training checkpoint, and the cache directory (the run's results_dir unless the task sets
    one), neither of which changes what the run computes."""
    task_cfg = with_pretrained(cfg)
    if "cache_dir" in task_cfg and task_cfg.cache_dir is None:
        task_cfg = OmegaConf.merge(task_cfg, {"cache_dir": str(Path(cfg.results_dir) / "cache")})
    return task_cfg


def make_task(cfg: DictConfig, device: torch.device):
    from hydra.utils import get_class

    return get_class(cfg.task._target_)(task_config(cfg), device)


def resolve_lr(cfg: DictConfig) -> tuple[float, str]:
    """The run's base LR and its origin: the config's, else the LR range test's (run once per (task,
    optimizer) and cached: runners/lr_find.py). A step of the run, never of reading its config."""
    from .lr_find import find_lr  # it imports the engine

    return configured_lr(cfg) or find_lr(cfg)


def execute(cfg: DictConfig, after_epoch=None) -> dict:
    """Own the run `cfg` describes, from config to final status: skip it when it has finished, resume it
    when interrupted, train it otherwise — as its one writer (runners/run_lock.py). Returns its status
    (as written to status.json). Bad input raises UserError before anything is written: a refusal met
    once directories or the lock were made (a task without the target's metric) removes them again."""
    schedule_cfg = resolve_schedule(cfg)
    configured = configured_lr(cfg)
    validate(cfg, schedule_cfg, configured[0] if configured else None)
    path = run_path(cfg)
    with nothing_left_if_refused(path.parent):
        check_writable(cfg.results_dir)
        with RunLock(path):
            files = RunFiles(path)
            # force=true, or records left without their status (RunFiles.is_orphaned): trained afresh, the
            # old files moved aside (never deleted) once the run's own checks have passed (train_run).
            replace = bool(cfg.force and path.exists()) or files.is_orphaned()
            previous = None if replace else files.read_state()
            if previous and previous["status"] in records.FINAL_STATUSES:
                print(f"run {path.name} already {previous['status']}; not training again (force=true "
                      f"reruns it)", file=sys.stderr)
                return previous
            return train_run(cfg, files, schedule_cfg, previous, after_epoch, replace)


def prepare(cfg: DictConfig, files: RunFiles, replace: bool):
    """The run's task, typed config, device and LR, once what only the built task can tell is checked
    (its metrics, its model); then, for a run trained afresh, the old directory moved aside."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # e.g. 1 per worker when grid jobs share a CPU
    device = select_device(cfg.device)
    task = make_task(cfg, device)
    run = typed_run(cfg)  # the typed run config the engine reads, its weight decay and clipping resolved
    target = run.task.target
    if target.metric not in task.metrics:
        raise UserError(f"task.target.metric={target.metric!r} is not a metric of task {cfg.task.name!r};"
                        f" it produces {list(task.metrics)}")
    problems = model_problems(task, run, (configured_lr(cfg) or (1.0, ""))[0])
    if problems:
        raise UserError(problems[0])
    check_data_kind(cfg.suite, fabricated_needs(run))
    lr, lr_origin = resolve_lr(cfg)  # after the checks: the LR range test trains
    if replace:
        why = "force=true" if cfg.force else f"records without a {records.STATUS_FILE} (a damaged run)"
        print(f"{why}: moved the earlier run to {files.move_aside()}", file=sys.stderr)
    return task, run, device, lr, lr_origin


def fabricated_needs(run: RunConf) -> list[str]:
    """The data the run reads that `python -m suites.data fake` fabricated (a marker file beside it)."""
    from suites.base import fabricated_at

    return [str(need.path) for need in run.task.data_needs() if fabricated_at(need.path)]


def check_data_kind(suite: str, fabricated: list[str]) -> None:
    """Fabricated data trains only a rehearsal (records.is_rehearsal), so no real suite's records can
    hold a run that measured nothing."""
    if fabricated and not records.is_rehearsal(suite):
        raise UserError(f"{fabricated[0]} is fabricated data (python -m suites.data fake): only a rehearsal "
                        f"reads it (python -m runners.grid suite=NAME rehearsal=true); point the task at real "
                        f"data (make data)")


def train_run(cfg: DictConfig, files: RunFiles, schedule_cfg: dict, previous: dict | None,
              after_epoch=None, replace: bool = False) -> dict:
    """Train (or resume) the run whose lock the caller holds, writing its config and status."""
    task, run, device, lr, lr_origin = prepare(cfg, files, replace)
    target = run.task.target
    files.path.mkdir(parents=True, exist_ok=True)
    files.keep_epoch_checkpoints = cfg.keep_epoch_checkpoints
    records.write_text_atomic(files.path / records.CONFIG_FILE,
                              OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg))))
    if previous is not None:
        files.log_resume(previous)
    status = {"run_id": files.path.name, "suite": cfg.suite, "task": cfg.task.name, "recipe": cfg.recipe,
              "optimizer": cfg.optimizer.name, "schedule": schedule_cfg["name"],
              "schedule_kind": schedule_cfg["kind"], "seed": cfg.seed, "epochs": cfg.epochs,
              "max_epochs": cfg.task.epochs, "budget_free": BUDGET_FREE[schedule_cfg["kind"]],
              "lr": {"value": lr, "origin": lr_origin}, "weight_decay": run.optimizer.weight_decay,
              "clip_grad": dict(zip(("value", "origin"), configured_clip(cfg))),
              "split": cfg.task.get("split", "test"), "trial": cfg.tuning_trial, "target": target.as_dict(),
              "environment": environment(device), "fabricated_data": bool(fabricated_needs(run)),
              "started": (previous or {}).get("started", now())}
    if previous and "branched_from" in previous:  # a WSD branch seeded from its trunk (runners/grid/wsd.py)
        status["branched_from"] = previous["branched_from"]
    files.write_status({**status, "status": "running"})
    files.hold_ballast()
    profile = Profile(device)
    measured = lambda: {"profile": {**profile.as_dict(files.checkpoint_path, cfg.task.get("batch_size")),  # noqa: E731
                                    "device_name": status["environment"]["device_name"]}}
    try:
        outcome = fit(task, run, lr, schedule_cfg, files, after_epoch, profile)
    except Exception as exc:
        oom = isinstance(exc, torch.OutOfMemoryError)
        error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        files.write_final_status({**status, "status": "failed", "ended": now(), "epochs_done": len(files.rows),
                            "error": f"{'out of memory: ' if oom else ''}{error}",
                            **summarise(files.rows, target), **measured()})
        raise
    status = {**status, "status": outcome.status, "ended": now(), "message": outcome.message,
              "epochs_done": len(files.rows), **summarise(files.rows, target), **measured()}
    if cfg.tuning_trial is not None:  # results/tuning.py: the one definition of a trial's score
        status.update(study=f"{cfg.task.name}/{cfg.optimizer.name}/{schedule_cfg['name']}",
                      score=trial_score(status, files.rows))
    files.write_final_status(status)
    # The records say all; a grid of ResNet-50 checkpoints would fill disks. A halted run resumes from it.
    if not cfg.keep_checkpoint and outcome.status != "halted":
        files.checkpoint_path.unlink(missing_ok=True)
    return status
