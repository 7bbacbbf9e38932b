"""The one training loop. Read top to bottom: build, (resume), then per epoch train, evaluate, record.

`fit` knows nothing of any dataset; the task supplies model, batches, loss and evaluation, and the typed
run config (runners.config.RunConf) the optimizer, stages and training options. Records are written
through the `RunFiles` it is given. `train_epoch` is the one step loop: the LR range test
(runners/lr_find.py) runs it too, with its own LR ramp and a callback that stops it.
"""
from __future__ import annotations

import itertools
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Sized

import numpy as np
import torch
from tqdm import tqdm

from .capabilities import Capabilities
from .checkpoint import rng_state, set_rng_state
from .config import RunConf
from .optimizers import apply_weight_decay, build_optimizer, current_momentum, set_lr, set_momentum
from .profile import Profile, capped
from .schedules import build_schedule

CHECK_EVERY = 50  # steps between loss finiteness checks: each one syncs the device
TRACE_POINTS = 8  # LR/momentum samples recorded per epoch, for the report's schedule plots


def select_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def is_frozen(module: torch.nn.Module) -> bool:
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def train_mode(model: torch.nn.Module) -> None:
    """Training mode, except BatchNorm layers whose parameters are all frozen: they keep their
    (pretrained) running statistics, as fastai 0.7 did for a frozen body."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and is_frozen(module):
            module.eval()


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Data order and augmentation of an epoch depend on (seed, epoch) only, so a resumed run
    sees exactly the batches an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class Outcome:
    status: str  # completed | diverged | pruned | halted (RunConf.halt_after)
    epochs_done: int
    message: str = ""


@dataclass(frozen=True)
class Stage:
    """Epochs [start, end) trained with one optimizer and one pass of the schedule."""

    start: int
    end: int
    lr_mult: float = 1.0
    freeze: tuple = ()
    group_lr_mult: tuple = ()  # (name, mult) pairs


def plan_stages(stages: list[dict], epochs: int) -> list[Stage]:
    """Split `epochs` among the task's stages by their `frac` (each gets at least one epoch)."""
    if not stages:
        return [Stage(0, epochs)]
    total, acc, bounds = sum(st["frac"] for st in stages), 0.0, [0]
    for i, st in enumerate(stages):
        acc += st["frac"]
        end = epochs if i == len(stages) - 1 else round(epochs * acc / total)
        bounds.append(min(max(end, bounds[-1] + 1), epochs - (len(stages) - 1 - i)))
    return [Stage(bounds[i], bounds[i + 1], st.get("lr_mult", 1.0), tuple(st.get("freeze", ())),
                  tuple((st.get("group_lr_mult") or {}).items())) for i, st in enumerate(stages)]


def stage_optimizer(opt_cfg: dict, stage: Stage) -> dict:
    """The optimizer config with the stage's frozen groups and LR multipliers added."""
    return {**opt_cfg, "freeze": sorted({*opt_cfg.get("freeze", ()), *stage.freeze}),
            "group_lr_mult": {**(opt_cfg.get("group_lr_mult") or {}), **dict(stage.group_lr_mult)}}


def train_epoch(task, model, optimizer, batches: Sized, schedule_at: Callable[[int], tuple], run: RunConf,
                device, epoch: int, bar: tqdm, after_batch=None) -> tuple[float, int, list]:
    """Scheduled steps over `batches`: batch i at LR multiplier and momentum `schedule_at(i)` (momentum
    None: left alone); autocast forward, backward, and every `accum_steps` batches clip, weight decay,
    step. `after_batch(i, loss)` returning True ends the pass (the LR range test's stop).
    Returns (mean train loss or NaN, optimizer steps taken, LR trace)."""
    n = len(batches)
    trace_at = {round(i * (n - 1) / max(TRACE_POINTS - 1, 1)) for i in range(TRACE_POINTS)}
    loss_sum, steps, trace = torch.zeros((), device=device), 0, []
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, batch in enumerate(batches):
        lr_mult, momentum = schedule_at(i)
        set_lr(optimizer, lr_mult * getattr(batch, "lr_scale", 1.0))
        if momentum is not None:
            set_momentum(optimizer, momentum)
        if i in trace_at:
            trace.append([round(epoch + i / n, 4), optimizer.param_groups[-1]["lr"],
                          current_momentum(optimizer)])
        with autocast(device, run.precision):
            loss = task.loss(model, batch)
        (loss / run.accum_steps).backward()
        loss_sum += loss.detach().float()
        if (i + 1) % run.accum_steps == 0 or i == n - 1:
            if run.clip_grad:
                torch.nn.utils.clip_grad_norm_(params, run.clip_grad)
            apply_weight_decay(optimizer, run.optimizer.wd_mode)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
        if after_batch is not None and after_batch(i, loss.detach()):
            break
        if (i + 1) % CHECK_EVERY == 0 or i == n - 1:
            mean = loss_sum.item() / (i + 1)
            if not math.isfinite(mean):
                return float("nan"), steps, trace
            bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
        bar.update(1)
    return loss_sum.item() / (i + 1), steps, trace


def evaluate(task, model, can: Capabilities, device, precision: str, final: bool = False,
             refresh_batches: Callable[[], Sized] | None = None) -> dict[str, float]:
    # An optimizer that averages iterates (NT-ASGD) evaluates with the averaged weights swapped in.
    # `final`: the task's optional end-of-run metrics (FinalMetrics) in that same context.
    method = can.evaluate_final if final else task.evaluate
    if method is None:
        return {}
    with torch.no_grad(), autocast(device, precision), can.evaluation_weights():
        if can.refresh_batches and refresh_batches is not None:
            recompute_batchnorm(task, model, itertools.islice(refresh_batches(), can.refresh_batches))
        model.eval()
        metrics = method(model)
    train_mode(model)
    return {k: float(v) for k, v in metrics.items()}


def recompute_batchnorm(task, model, batches) -> None:
    """BatchNorm statistics recomputed at the evaluation weights from `batches` forwarded in training mode:
    statistics gathered at other weights (Schedule-Free's y, where it trains) do not describe these (x).
    The schedulefree README's fix for BN models ("Caveats": 50 training batches before each evaluation),
    as an equal average over them (the PreciseBN form it names) rather than an EMA on the old values."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats and not is_frozen(m)]  # a frozen BN keeps its statistics
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    train_mode(model)
    for batch in batches:
        task.loss(model, batch)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


def fit(task, run: RunConf, lr: float, schedule_cfg: dict, files, after_epoch=None,
        profile: Profile | None = None) -> Outcome:
    """Train `task` as `run` says to the end of its budget (or its target, when allowed), recording every
    epoch. `lr` and `schedule_cfg` are the run's resolved ones (runners/spec.py RunSpec.lr, else the LR
    range test's; RunSpec.schedule). `after_epoch(row)` is told each recorded row — on resume, the
    recorded ones first — and returning True ends the run as "pruned" (a tuning trial's pruner:
    runners/grid/tuning.py). `profile` is given this process's timings (runners/profile.py).
    `run.limit_batches` caps every epoch's batches, BatchNorm refreshes' too (a rehearsal), and then one
    step's FLOPs are counted in each stage."""
    device = select_device(run.device)
    profile = profile or Profile(device)
    seed_everything(run.seed, run.deterministic)
    model = task.build_model().to(device)
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    start_epoch, step, wall = 0, 0, 0.0
    state = files.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        set_rng_state(state["rng"])
        start_epoch, step, wall = state["epoch"], state["step"], state["wall_s"]
    for row in files.rows if after_epoch else ():
        if after_epoch(row):
            return Outcome("pruned", row["epoch"], f"pruned after epoch {row['epoch']}")
    forward = torch.compile(model) if run.compile else model
    show = sys.stderr.isatty() if run.progress is None else run.progress
    plan, stage = plan_stages([asdict(st) for st in run.task.stages], run.epochs), None
    opt_cfg, target = asdict(run.optimizer), run.task.target
    for epoch in range(start_epoch, run.epochs):
        if run.halt_after is not None and epoch >= run.halt_after:  # resumable: a WSD trunk's pause
            return Outcome("halted", epoch, f"halted after epoch {epoch} (halt_after)")
        if stage is None or epoch >= stage.end:  # a new stage: fresh optimizer, schedule from its start
            stage = next(st for st in plan if st.start <= epoch < st.end)
            optimizer = build_optimizer(stage_optimizer(opt_cfg, stage), model, lr * stage.lr_mult,
                                        run.task.io_params)
            if state is not None and epoch > stage.start:
                optimizer.load_state_dict(state["optimizer"])
            schedule = build_schedule(schedule_cfg, stage.end - stage.start)
            can = Capabilities.of(task, optimizer)
            train_mode(model)  # the stage changed what is frozen
        epoch_batches = lambda: capped(task.train_batches(epoch, epoch_generator(run.seed, epoch)),  # noqa: E731
                                       run.limit_batches)
        index = plan.index(stage)
        if run.limit_batches is not None and index not in profile.stage_flops:  # a stage's first epoch here
            weight = run.task.stages[index].frac if run.task.stages else 1.0  # its share of a full run
            profile.count(task, model, epoch_batches(), lambda: autocast(device, run.precision), index, weight)
        started = time.perf_counter()
        batches = epoch_batches()
        at = lambda i: schedule(epoch - stage.start + i / len(batches))  # noqa: E731  (epochs into the stage)
        with tqdm(desc=f"epoch {epoch + 1}/{run.epochs}", disable=not show, leave=False,
                  file=sys.stderr) as bar:
            train_loss, steps, trace = train_epoch(task, forward, optimizer, batches, at, run, device,
                                                   epoch, bar)
        step += steps
        if not math.isfinite(train_loss):
            return Outcome("diverged", epoch, f"non-finite training loss in epoch {epoch + 1}")
        profile.sync()
        evaluated = time.perf_counter()
        profile.train_s, profile.steps = profile.train_s + evaluated - started, profile.steps + steps
        metrics = evaluate(task, forward, can, device, run.precision, refresh_batches=epoch_batches)
        profile.sync()
        profile.eval_s, profile.evaluations = profile.eval_s + time.perf_counter() - evaluated, \
            profile.evaluations + 1
        wall += time.perf_counter() - started
        stop = run.stop_at_target and schedule.budget_free and target.is_met(metrics.get(target.metric))
        if stop or epoch + 1 == run.epochs:
            # End-of-run metrics join the last row before it is written, so a resumed run has them;
            # not in wall_s, which times training and the per-epoch evaluation.
            metrics.update(evaluate(task, forward, can, device, run.precision, final=True))
        row = {"epoch": epoch + 1, "step": step, "wall_s": round(wall, 3), "train_loss": train_loss,
               "lr": trace[-1][1], "momentum": trace[-1][2], "lr_trace": trace, **metrics}
        for hook in can.epoch_end:
            hook(epoch + 1, row)
        files.epoch_done(row, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "rng": rng_state(), "epoch": epoch + 1, "step": step, "wall_s": wall})
        if stop:
            return Outcome("completed", epoch + 1, "stopped at target")
        if after_epoch is not None and epoch + 1 < run.epochs and after_epoch(row):
            return Outcome("pruned", epoch + 1, f"pruned after epoch {epoch + 1}")
    return Outcome("completed", run.epochs)
