"""LR range test (Smith 2015; fastai `lr_find`), the LR of a (task, optimizer) that neither the recipe
nor the task's table gives.

Method: a fresh model (seed `lr_find.seed`), the run's optimizer built through the same plumbing as
training (parameter groups, first stage's frozen groups and LR multipliers, weight-decay mode, clipping),
trained for `steps` batches while the LR grows exponentially from `start_lr` to `end_lr`. The loss is
smoothed with a debiased EMA (`smoothing`); the test stops early once the smoothed loss exceeds
`divergence` x its best, or is not finite.
Selection rule (fastai's `minimum` suggestion): the LR at the lowest smoothed loss, divided by
`divisor` (10) — one order of magnitude below where the loss stops improving, inside the stable range.

The result is cached once per (task, optimizer) — keyed by their configs and the test's settings — as
JSON under `<results_dir>/cache/lr_find/`, and every run using it records origin `lr_find[<file>]`.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from results import records

from .engine import autocast, epoch_generator, plan_stages, seed_everything, select_device, stage_optimizer
from .errors import UserError
from .optimizers import apply_weight_decay, build_optimizer, set_lr

RULE = "lr = (LR at the lowest debiased-EMA training loss) / divisor  [fastai 'minimum']"


@dataclass
class RangeTest:
    lr: float  # the chosen base LR
    lr_at_min: float
    lrs: list[float]
    losses: list[float]  # raw batch losses
    smoothed: list[float]
    stopped_early: bool


def batches_forever(task, seed: int):
    """The task's training batches, epoch after epoch (same data order as a run of that seed)."""
    epoch = 0
    while True:
        yield from task.train_batches(epoch, epoch_generator(seed, epoch))
        epoch += 1


def lr_range_test(task, opt_cfg: dict, settings: dict, device: torch.device, stages: list | None = None,
                  clip_grad: float | None = None, wd_mode: str = "decoupled",
                  precision: str = "fp32") -> RangeTest:
    """Run the test on `task` with optimizer config `opt_cfg`; `settings` as runners.config.LRFindConf."""
    steps, start, end = int(settings["steps"]), float(settings["start_lr"]), float(settings["end_lr"])
    if steps < 2 or not 0 < start < end:
        raise UserError(f"lr_find needs steps >= 2 and 0 < start_lr < end_lr (got {steps}, {start}, {end})")
    seed_everything(int(settings["seed"]), deterministic=False)
    model = task.build_model().to(device)
    model.train()
    stage = plan_stages(stages or [], max(len(stages or []), 1))[0]
    optimizer = build_optimizer(stage_optimizer(opt_cfg, stage), model, start * stage.lr_mult)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    growth = (end / start) ** (1 / (steps - 1))
    beta, avg, best = float(settings["smoothing"]), 0.0, math.inf
    lrs, losses, smoothed = [], [], []
    for i, batch in zip(range(steps), batches_forever(task, int(settings["seed"]))):
        set_lr(optimizer, growth ** i * getattr(batch, "lr_scale", 1.0))
        with autocast(device, precision):
            loss = task.loss(model, batch)
        loss.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        apply_weight_decay(optimizer, wd_mode)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        avg = beta * avg + (1 - beta) * value
        current = avg / (1 - beta ** (i + 1))
        lrs.append(start * growth ** i)
        losses.append(value)
        smoothed.append(current)
        if not math.isfinite(current) or current > settings["divergence"] * best:
            break
        best = min(best, current)
    finite = [(s, lr) for s, lr in zip(smoothed, lrs) if math.isfinite(s)]
    lr_at_min = min(finite)[1] if finite else start
    return RangeTest(lr=lr_at_min / float(settings["divisor"]), lr_at_min=lr_at_min, lrs=lrs,
                     losses=losses, smoothed=smoothed, stopped_early=len(lrs) < steps)


def cache_path(cfg: DictConfig) -> Path:
    """One file per (task, optimizer, test settings): any change to them is a new test."""
    key = {"task": OmegaConf.to_container(cfg.task, resolve=True),
           "optimizer": {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items()
                         if k != "lr"},
           "lr_find": OmegaConf.to_container(cfg.lr_find, resolve=True),
           "precision": cfg.precision, "clip_grad": cfg.clip_grad}
    name = f"{cfg.task.name}__{cfg.optimizer.name}__{records.run_id(key)}.json"
    return Path(cfg.results_dir) / "cache" / "lr_find" / name


def cached_lr(cfg: DictConfig) -> float | None:
    """The cached LR for this (task, optimizer), or None when the test has not run (no training)."""
    path = cache_path(cfg)
    return float(json.loads(path.read_text())["lr"]) if path.exists() else None


def find_lr(cfg: DictConfig) -> tuple[float, str]:
    """(lr, origin) from the cache, running the test first when needed. A lock file makes parallel
    grid workers of the same (task, optimizer) run it once."""
    path = cache_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not path.exists():
            print(f"lr_find: no recipe LR for {cfg.optimizer.name} on {cfg.task.name}; running the LR "
                  f"range test ({cfg.lr_find.steps} steps)", file=sys.stderr)
            record = run_and_record(cfg)
            records.write_json_atomic(path, record)
            print(f"lr_find: picked lr={record['lr']:.3g} -> {path}", file=sys.stderr)
    return float(json.loads(path.read_text())["lr"]), f"lr_find[{path.name}]"


def run_and_record(cfg: DictConfig) -> dict:
    from hydra.utils import get_class

    device = select_device(cfg.device)
    task = get_class(cfg.task._target_)(cfg.task, device)
    settings = OmegaConf.to_container(cfg.lr_find, resolve=True)
    test = lr_range_test(task, OmegaConf.to_container(cfg.optimizer, resolve=True), settings, device,
                         stages=OmegaConf.to_container(cfg.task.stages, resolve=True),
                         clip_grad=cfg.clip_grad, wd_mode=cfg.optimizer.wd_mode, precision=cfg.precision)
    return {"task": cfg.task.name, "optimizer": cfg.optimizer.name, "lr": test.lr, "rule": RULE,
            "settings": settings, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": str(device), **{k: v for k, v in asdict(test).items() if k != "lr"}}
