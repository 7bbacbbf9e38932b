"""LR range test (Smith 2015; fastai `lr_find`), the LR of a (task, optimizer) that neither the recipe
nor the task's table gives.

Method: a fresh model (seed `lr_find.seed`), the run's optimizer built through the same plumbing as
training (parameter groups, first stage's frozen groups and LR multipliers, weight-decay mode, clipping),
trained for `steps` batches while the LR grows exponentially from `start_lr` to `end_lr`. The loss is
smoothed with a debiased EMA (`smoothing`); the test stops early once the smoothed loss exceeds
`divergence` x its best, or is not finite. It trains with the engine's own step loop (`train_epoch`):
one pass over the first `steps` batches, the LR ramp as its schedule and a `LossRecorder` as the
callback that records and stops it (the shape of fastai's LRFinder callback).
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
from dataclasses import asdict, dataclass, field, replace
from itertools import chain, count, islice
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from results import records
from results.errors import UserError
from results.layout import Layout

from .config import RunConf
from .engine import epoch_generator, plan_stages, seed_everything, stage_optimizer, train_epoch
from .optimizers import build_optimizer
from .schedules import exponential
from .spec import RunSpec, Sourced

RULE = "lr = (LR at the lowest debiased-EMA training loss) / divisor  [fastai 'minimum']"


@dataclass
class RangeTest:
    lr: float  # the chosen base LR
    lr_at_min: float
    lrs: list[float]
    losses: list[float]  # raw batch losses
    smoothed: list[float]
    stopped_early: bool


@dataclass
class FirstBatches:
    """The first `steps` training batches of a run of seed `seed`, epoch after epoch, as one sized pass
    (same data order as that run)."""

    task: Any
    seed: int
    steps: int

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        epochs = (self.task.train_batches(e, epoch_generator(self.seed, e)) for e in count())
        return islice(chain.from_iterable(epochs), self.steps)


@dataclass
class LossRecorder:
    """The step loop's callback: records each raw and debiased-EMA loss; True (stop) once the smoothed
    loss is not finite or exceeds `divergence` x its best."""

    smoothing: float
    divergence: float
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    avg: float = 0.0
    best: float = math.inf

    def __call__(self, i: int, loss: torch.Tensor) -> bool:
        value = float(loss)
        self.avg = self.smoothing * self.avg + (1 - self.smoothing) * value
        current = self.avg / (1 - self.smoothing ** (i + 1))
        self.losses.append(value)
        self.smoothed.append(current)
        if not math.isfinite(current) or current > self.divergence * self.best:
            return True
        self.best = min(self.best, current)
        return False


def lr_range_test(task, run: RunConf, device: torch.device) -> RangeTest:
    """Run the test `run.lr_find` on `task` with the run's optimizer, precision and clipping."""
    find = run.lr_find
    steps, start, end = find.steps, find.start_lr, find.end_lr
    if steps < 2 or not 0 < start < end:
        raise UserError(f"lr_find needs steps >= 2 and 0 < start_lr < end_lr (got {steps}, {start}, {end})")
    seed_everything(find.seed, deterministic=False)
    model = task.build_model().to(device)
    model.train()
    stages = [asdict(st) for st in run.task.stages]
    stage = plan_stages(stages, max(len(stages), 1))[0]
    optimizer = build_optimizer(stage_optimizer(asdict(run.optimizer), stage), model, stage.lr_mult,
                                run.task.io_params)
    ramp = exponential(start, end)
    at = lambda i: ramp(i / (steps - 1))  # noqa: E731
    recorder = LossRecorder(find.smoothing, find.divergence)
    # A step every batch, whatever the run accumulates (accum_steps is not part of the cache key).
    train_epoch(task, model, optimizer, FirstBatches(task, find.seed, steps), at, replace(run, accum_steps=1),
                device, 0, tqdm(disable=True), recorder)
    lrs = [at(i)[0] for i in range(len(recorder.losses))]
    finite = [(s, lr) for s, lr in zip(recorder.smoothed, lrs) if math.isfinite(s)]
    lr_at_min = min(finite)[1] if finite else start
    return RangeTest(lr=lr_at_min / find.divisor, lr_at_min=lr_at_min, lrs=lrs, losses=recorder.losses,
                     smoothed=recorder.smoothed, stopped_early=len(lrs) < steps)


def cache_path(spec: RunSpec) -> Path:
    """One file per (task, optimizer, test settings): any change to them is a new test."""
    config = spec.config
    key = {"task": config["task"], "optimizer": {k: v for k, v in config["optimizer"].items() if k != "lr"},
           "lr_find": config["lr_find"], "precision": config["precision"], "clip_grad": config["clip_grad"]}
    name = f"{spec.run.task.name}__{spec.run.optimizer.name}__{records.run_id(key)}.json"
    return Layout.at(spec.run.results_dir).lr_find_cache() / name


def cached_lr(spec: RunSpec) -> float | None:
    """The cached LR for this (task, optimizer), or None when the test has not run (no training)."""
    path = cache_path(spec)
    return float(json.loads(path.read_text())["lr"]) if path.exists() else None


def find_lr(spec: RunSpec, task, device: torch.device) -> Sourced:
    """The LR from the cache, running the test on the run's `task` first when needed. A lock file makes
    parallel grid workers of the same (task, optimizer) run it once."""
    path = cache_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not path.exists():
            print(f"lr_find: no recipe LR for {spec.run.optimizer.name} on {spec.run.task.name}; running the "
                  f"LR range test ({spec.run.lr_find.steps} steps)", file=sys.stderr)
            test = lr_range_test(task, spec.run, device)
            record = {"task": spec.run.task.name, "optimizer": spec.run.optimizer.name, "lr": test.lr,
                      "rule": RULE, "settings": spec.config["lr_find"],
                      "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "device": str(device), **{k: v for k, v in asdict(test).items() if k != "lr"}}
            records.write_json_atomic(path, record)
            print(f"lr_find: picked lr={record['lr']:.3g} -> {path}", file=sys.stderr)
    return Sourced(float(json.loads(path.read_text())["lr"]), f"lr_find[{path.name}]")
