"""One experiment from a composed config: find or create its run directory, skip, resume or train,
and keep the records true at every instant."""
from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import filelock
import torch
from omegaconf import DictConfig, OmegaConf

from results import records
from results.errors import UserError
from results.targets import Target, epochs_to_target

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConf, configured_lr, resolve_schedule, resolved_config, run_path, validate
from .engine import fit, select_device
from .schedules import BUDGET_FREE


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
            "git_sha": git_sha(), "command": " ".join(sys.argv)}


class RunFiles:
    """The run directory: config.yaml, metrics.jsonl, status.json, checkpoint.pt."""

    def __init__(self, path: Path):
        self.path = path
        self.metrics_path = path / records.METRICS_FILE
        self.status_path = path / records.STATUS_FILE
        self.checkpoint_path = path / records.CHECKPOINT_FILE
        self.rows: list[dict] = []

    def read_state(self) -> dict | None:
        """Existing status (None for a new run); raises UserError when the old records are corrupt."""
        try:
            status = records.read_status(self.status_path)
            self.rows = records.read_metrics(self.metrics_path)
        except records.CorruptRecord as exc:
            raise UserError(f"{exc}. The run's files are kept as they are; rerun with force=true to "
                            f"move them aside and train this run again.") from None
        return status

    def load_checkpoint(self) -> dict | None:
        try:
            state = load_checkpoint(self.checkpoint_path)
        except Exception as exc:  # a truncated or foreign file: say so rather than mix runs
            raise UserError(f"{self.checkpoint_path}: unreadable checkpoint ({exc}); rerun with "
                            f"force=true to move the run aside and train it again") from None
        if state is None:
            self.rows = records.keep_epochs(self.metrics_path, self.rows, 0) if self.rows else []
            return None
        # Epochs recorded after the last checkpoint will be trained again: drop their rows.
        self.rows = records.keep_epochs(self.metrics_path, self.rows, state["epoch"])
        return state

    def epoch_done(self, row: dict, state: dict) -> None:
        records.append_jsonl(self.metrics_path, row)  # first the row, then the checkpoint covering it
        self.rows.append(row)
        save_checkpoint(self.checkpoint_path, state)

    def write_status(self, status: dict) -> None:
        records.write_json_atomic(self.status_path, status)

    def move_aside(self) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        dest = self.path.with_name(f".{self.path.name}.replaced-{stamp}")
        self.path.rename(dest)
        return dest


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


def check_writable(results_dir: str) -> Path:
    root = Path(results_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"results_dir={results_dir!r} is not writable ({exc.strerror}); "
                        f"set results_dir=... or ONECYCLE_RESULTS to a writable directory") from None
    return root


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
    key = records.run_id(OmegaConf.to_container(pre, resolve=True))
    lock = Path(cfg.results_dir) / "runs" / PRETRAIN_SUITE / f".{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(lock):  # parallel grid workers: one trains it, the others then find it
        status = execute(run)
    path = run_path(run)
    if status["status"] != "completed":
        raise UserError(f"the pre-training run {path} ended {status['status']} ({status.get('message')}); "
                        f"fix its task.pretrain settings")
    print(f"{cfg.task.name}: starting from pre-training run {path}", file=sys.stderr)
    return OmegaConf.merge(cfg.task, {"pretrained_path": str(path / records.CHECKPOINT_FILE)})


def make_task(cfg: DictConfig, device: torch.device):
    from hydra.utils import get_class

    return get_class(cfg.task._target_)(with_pretrained(cfg), device)


def resolve_lr(cfg: DictConfig) -> tuple[float, str]:
    """The run's base LR and its origin: the config's, else the LR range test's (run once per (task,
    optimizer) and cached: runners/lr_find.py). A step of the run, never of reading its config."""
    from .lr_find import find_lr  # it imports the engine

    return configured_lr(cfg) or find_lr(cfg)


def execute(cfg: DictConfig) -> dict:
    """Own the run `cfg` describes, from config to final status: skip it when it has finished, resume it
    when interrupted, train it otherwise. Returns its status (as written to status.json)."""
    schedule_cfg = resolve_schedule(cfg)
    configured = configured_lr(cfg)
    validate(cfg, schedule_cfg, configured[0] if configured else None)
    check_writable(cfg.results_dir)
    path = run_path(cfg)
    files = RunFiles(path)
    if cfg.force and path.exists():
        print(f"force=true: moved the earlier run to {files.move_aside()}", file=sys.stderr)
    previous = files.read_state()
    if previous and previous["status"] in records.FINAL_STATUSES:
        print(f"run {path.name} already {previous['status']}; not training again (force=true reruns it)",
              file=sys.stderr)
        return previous
    lr, lr_origin = resolve_lr(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # e.g. 1 per worker when grid jobs share a CPU
    device = select_device(cfg.device)
    task = make_task(cfg, device)
    run = OmegaConf.to_object(cfg)  # the typed run config the engine reads
    target = run.task.target
    if target.metric not in task.metrics:
        raise UserError(f"task.target.metric={target.metric!r} is not a metric of task {cfg.task.name!r};"
                        f" it produces {list(task.metrics)}")
    path.mkdir(parents=True, exist_ok=True)
    records.write_text_atomic(path / records.CONFIG_FILE,
                              OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg))))
    status = {"run_id": path.name, "suite": cfg.suite, "task": cfg.task.name, "recipe": cfg.recipe,
              "optimizer": cfg.optimizer.name, "schedule": schedule_cfg["name"],
              "schedule_kind": schedule_cfg["kind"], "seed": cfg.seed, "epochs": cfg.epochs,
              "max_epochs": cfg.task.epochs, "budget_free": BUDGET_FREE[schedule_cfg["kind"]],
              "lr": {"value": lr, "origin": lr_origin}, "target": target.as_dict(),
              "environment": environment(device), "started": (previous or {}).get("started", now()),
              "resumed": previous is not None}
    files.write_status({**status, "status": "running"})
    try:
        outcome = fit(task, run, lr, schedule_cfg, files)
    except Exception as exc:
        oom = isinstance(exc, torch.OutOfMemoryError)
        files.write_status({**status, "status": "failed", "ended": now(), "epochs_done": len(files.rows),
                            "error": f"{'out of memory: ' if oom else ''}{type(exc).__name__}: {exc}",
                            **summarise(files.rows, target)})
        raise
    status = {**status, "status": outcome.status, "ended": now(), "message": outcome.message,
              "epochs_done": len(files.rows), **summarise(files.rows, target)}
    files.write_status(status)
    if not cfg.keep_checkpoint:  # the records say all; a grid of ResNet-50 checkpoints would fill disks
        files.checkpoint_path.unlink(missing_ok=True)
    return status
