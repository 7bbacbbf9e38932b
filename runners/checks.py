"""Value checks a config's types cannot express, one message per problem naming its key
(`<key> must be ..., got ...`): runners/config.py `validate` raises the first as a UserError before
anything is written. Torch is imported inside the two checks that need it (the device, the optimizer
class), so that the config layer stays importable without it."""
from __future__ import annotations

import math
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from results.targets import MODES

# Added to the gradient, p <- p - lr_t * wd * p before the step, or the class's own form with each group's
# weight_decay (runners/optimizers.py).
WD_MODES = ("l2", "decoupled", "native")
DEVICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def run_problems(cfg: DictConfig) -> list[str]:
    found = []
    if not str(cfg.results_dir).strip():  # an empty path would write ./runs in the working directory
        found.append("results_dir must be a non-empty path, got ''")
    if cfg.seed < 0:
        found.append(f"seed must be >= 0, got {cfg.seed}")
    if cfg.threads is not None and cfg.threads < 1:
        found.append(f"threads must be null or >= 1, got {cfg.threads}")
    if not DEVICE_RE.fullmatch(cfg.device):
        found.append(f"device must be one of {DEVICES}, got {cfg.device!r}")
    if cfg.epochs < 1:
        found.append(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.accum_steps < 1:
        found.append(f"accum_steps must be >= 1, got {cfg.accum_steps}")
    if cfg.precision not in ("fp32", "bf16"):
        found.append(f"precision must be fp32 or bf16, got {cfg.precision!r}")
    if cfg.clip_grad is not None and not (math.isfinite(cfg.clip_grad) and cfg.clip_grad >= 0):
        found.append(f"clip_grad must be >= 0 and finite (0: no clipping) or null (the task's), got "
                     f"{cfg.clip_grad}")
    if cfg.task.target.mode not in MODES:
        found.append(f"task.target.mode must be max or min, got {cfg.task.target.mode!r}")
    if cfg.task.stages:
        if not all(st.frac > 0 for st in cfg.task.stages):
            found.append("task.stages[*].frac must be > 0")
        if cfg.epochs < len(cfg.task.stages):
            found.append(f"epochs={cfg.epochs} is fewer than the task's {len(cfg.task.stages)} stages")
    return found


def optimizer_problems(opt: DictConfig, key: str = "optimizer") -> list[str]:
    """The values torch.optim would refuse only once the model is built (or, for eps=0, accept and then
    divide 0 by 0 for a parameter whose gradient is always zero)."""
    found = []
    if opt.wd_mode not in WD_MODES:
        found.append(f"{key}.wd_mode must be one of {WD_MODES}, got {opt.wd_mode!r}")
    if opt.weight_decay is not None and not (math.isfinite(opt.weight_decay) and opt.weight_decay >= 0):
        found.append(f"{key}.weight_decay must be null or finite and >= 0, got {opt.weight_decay}")
    kwargs = opt.kwargs
    if "betas" in kwargs:
        betas = kwargs.betas
        if not (OmegaConf.is_list(betas) and len(betas) == 2 and all(_number_in(b, 0, 1) for b in betas)):
            found.append(f"{key}.kwargs.betas must be 2 values, each in [0, 1), got {_show(betas)}")
    if "eps" in kwargs and not _number_in(kwargs.eps, 0, math.inf, low_open=True):
        found.append(f"{key}.kwargs.eps must be > 0, got {_show(kwargs.eps)}")
    for name in ("momentum", "dampening", "alpha"):
        if name in kwargs and not _number_in(kwargs[name], 0, math.inf):
            found.append(f"{key}.kwargs.{name} must be >= 0, got {_show(kwargs[name])}")
    for name in ("lr", "weight_decay"):  # given separately; kwargs.weight_decay would be silently zeroed
        if name in kwargs:
            found.append(f"{key}.kwargs.{name} is not allowed: set {key}.{name} instead")
    return found


def _number_in(value: Any, low: float, high: float, low_open: bool = False) -> bool:
    """`value` a real number in [low, high) — (low, high) with low_open; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (low < value if low_open else low <= value) and value < high


def _show(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def schedule_problems(schedule: dict) -> list[str]:
    found, kind = [], schedule["kind"]
    if kind == "one_cycle":
        if not 0 < schedule["pct_start"] < 1:
            found.append(f"schedule.pct_start must be in (0, 1), got {schedule['pct_start']}")
        if len(schedule["moms"]) != 3:
            found.append("schedule.moms must have 3 values (start, middle, end)")
    if kind in ("one_cycle", "one_cycle_phases") and not schedule["div"] > 0:
        found.append(f"schedule.div must be > 0, got {schedule['div']}")
    if kind == "one_cycle_phases":
        parts = [schedule[k] for k in ("warmup", "flat", "down", "final")]
        if not (min(parts) >= 0 and sum(parts) > 0):
            found.append("schedule phases must be >= 0 with a positive sum")
        if schedule["final_shape"] not in ("linear", "cosine"):
            found.append("schedule.final_shape: linear or cosine")
        if len(schedule["moms"]) != 2:
            found.append("schedule.moms must have 2 values (high, low)")
    if kind == "step" and not 0 < schedule["gamma"] <= 1:
        found.append(f"schedule.gamma must be in (0, 1], got {schedule['gamma']}")
    return found + warmup_decay_problems(schedule)


def warmup_decay_problems(schedule: dict) -> list[str]:
    """warmup, cosine, wsd: lengths and the final LR multiplier."""
    found, kind = [], schedule["kind"]
    if kind in ("warmup", "wsd") and not schedule["warmup_epochs"] >= 0:
        found.append(f"schedule.warmup_epochs must be >= 0, got {schedule['warmup_epochs']}")
    if kind == "cosine" and not 0 <= schedule["warmup_pct"] < 1:
        found.append(f"schedule.warmup_pct must be in [0, 1), got {schedule['warmup_pct']}")
    if kind in ("cosine", "wsd") and not 0 <= schedule["final"] <= 1:
        found.append(f"schedule.final must be in [0, 1] (a multiplier of the LR), got {schedule['final']}")
    if kind == "wsd":
        if not 0 < schedule["cooldown_frac"] <= 1:
            found.append(f"schedule.cooldown_frac must be in (0, 1], got {schedule['cooldown_frac']}")
        if schedule["cooldown_shape"] not in ("linear", "sqrt"):
            found.append(f"schedule.cooldown_shape must be linear or sqrt, got "
                         f"{schedule['cooldown_shape']!r}")
    return found


def task_problems(task: DictConfig) -> list[str]:
    """The task schema's own checks (suites/base.py TaskConf.problems, extended by each task), reached
    through the typed object so that runners/ needs no import of suites/."""
    try:
        obj = OmegaConf.to_object(task)
    except (OmegaConfBaseException, ValueError) as exc:  # a value left ???, a Target refusing its mode, ...
        return [f"task: {exc}".splitlines()[0]]
    found = [f"task.{p}" for p in obj.problems()] if hasattr(obj, "problems") else []
    pre = getattr(obj, "pretrain", None)  # a pre-training run, trained first: its optimizer too
    if pre is not None and OmegaConf.is_config(task.pretrain.optimizer):
        found += optimizer_problems(task.pretrain.optimizer, "task.pretrain.optimizer")
    return found


def device_problems(spec: str) -> list[str]:
    """Whether the device exists on this machine (torch imported here only: this module stays
    importable without it)."""
    import torch

    available = ["auto", "cpu"]
    if torch.cuda.is_available():
        available += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        available.append("mps")
    if spec in available:
        return []
    where = "" if torch.cuda.is_available() else " (no CUDA device)"
    return [f"device must be one of {', '.join(available)} on this machine{where}, got {spec!r}"]


def optimizer_class_problems(opt: DictConfig, key: str = "optimizer", io_params=None) -> list[str]:
    from .optimizers import check_optimizer_class  # imports torch

    problem = check_optimizer_class(opt._target_, list(opt.kwargs), opt.wd_mode, io_params,
                                    bool(opt.get("cycle_momentum", False)))
    return [f"{key}.{problem}"] if problem else []
