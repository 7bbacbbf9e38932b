"""Value checks a config's types cannot express, one message per problem naming its key
(`<key> must be ..., got ...`): runners/spec.py `validate` raises the first as a UserError before
anything is written. Torch is imported inside the checks that need it (the device, the optimizer class,
the model: `model_problems`, which runners/run.py runs once the task is built), so that the config
layer stays importable without it."""
from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from results.records import name_problem
from results.targets import MODES

# Added to the gradient, p <- p - lr_t * wd * p before the step, or the class's own form with each group's
# weight_decay (runners/optimizers.py).
WD_MODES = ("l2", "decoupled", "native")
DEVICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# torch takes the LR as a float32 scalar (p.add_(alpha=-lr), 1 - lr * wd): past float32's range the first
# step raises an overflow RuntimeError instead of diverging. A margin of 1000 for per-batch LR scales.
MAX_STEP_LR = 3.4028234663852886e38 / 1000


def name_problems(cfg: DictConfig) -> list[str]:
    """The names that become a path part (results/<kind>/<suite>/..., a cell record's file name, a tuning
    study's): results/records.py `name_problem`, the one rule, so that '../x' or 'a/b' never escapes
    the results directory nor splits a name into directories."""
    named = [("suite", cfg.suite), ("task.name", cfg.task.name), ("optimizer.name", cfg.optimizer.name),
             ("schedule.name", cfg.schedule.name)]
    if cfg.get("recipe") is not None:
        named.append(("recipe", cfg.recipe))
    return [problem for kind, value in named if (problem := name_problem(kind, value))]


def unknown_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys that are not fields of their node's schema. Hydra's `+key=value` adds a key even to a
    typed node; this catches what such a typo would otherwise silently leave unused."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return []
    fields = {f.name for f in dataclasses.fields(schema)}
    found = []
    for key in node.keys():
        if key not in fields:
            found.append(f"{prefix}{key}")
        elif OmegaConf.is_dict(node._get_node(key)):
            found += unknown_keys(node[key], f"{prefix}{key}.")
    return found


def moms_key(cfg: DictConfig) -> str:
    """Where a 1cycle schedule's momenta come from: its own `moms`, else the task's (config.py
    with_task_moms), so that a bad value is named where it was set."""
    own = cfg.task.reference.get("moms") if cfg.schedule.kind == "reference" else cfg.schedule.get("moms")
    if own is not None:
        return "task.reference.moms" if cfg.schedule.kind == "reference" else "schedule.moms"
    return "task.moms"


def lr_problems(cfg: DictConfig, lr: float, key: str, wd: float) -> list[str]:
    """The base LR (from `key`), and the largest LR a step can take: times every group and stage
    multiplier, and times the weight decay in decoupled decay's 1 - lr * wd."""
    if not (math.isfinite(lr) and lr > 0):
        return [f"{key} must be > 0 and finite, got {lr}"]
    mults = [1.0, *cfg.optimizer.group_lr_mult.values()]
    for stage in cfg.task.stages:
        mults += [stage.lr_mult * m for m in (1.0, *stage.group_lr_mult.values())]
    scale = max(mults) * max(1.0, wd)
    if lr * scale > MAX_STEP_LR:
        return [f"{key} must keep every step's LR under {MAX_STEP_LR:.3g} (float32's range / 1000), got "
                f"{lr} (x{scale:g} by the LR multipliers and weight decay)"]
    return []


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
    if cfg.get("limit_batches") is not None and cfg.limit_batches < 1:
        found.append(f"limit_batches must be null or >= 1, got {cfg.limit_batches}")
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
    # A momentum of 1 never forgets a gradient, above 1 it amplifies them: trained to chance, not refused
    # by torch (SGD) nor by the other classes (Muon, Schedule-Free).
    if "momentum" in kwargs and not _number_in(kwargs.momentum, 0, 1):
        found.append(f"{key}.kwargs.momentum must be in [0, 1), got {_show(kwargs.momentum)}")
    if "dampening" in kwargs and not (_number_in(kwargs.dampening, 0, math.inf) and kwargs.dampening <= 1):
        found.append(f"{key}.kwargs.dampening must be in [0, 1], got {_show(kwargs.dampening)}")
    if "alpha" in kwargs and not _number_in(kwargs.alpha, 0, math.inf):
        found.append(f"{key}.kwargs.alpha must be >= 0, got {_show(kwargs.alpha)}")
    found += step_count_problems(kwargs, key)
    for name in ("lr", "weight_decay"):  # given separately; kwargs.weight_decay would be silently zeroed
        if name in kwargs:
            found.append(f"{key}.kwargs.{name} is not allowed: set {key}.{name} instead")
    return found


def step_count_problems(kwargs: DictConfig, key: str) -> list[str]:
    """Counts of optimizer steps (sf_adamw's warmup_steps, muon's ns_steps): whole and non-negative —
    the classes take a negative warm-up as a negative LR multiplier; Muon needs one Newton-Schulz step."""
    found = []
    for name in (n for n in kwargs if str(n).endswith("_steps")):
        value, low = kwargs[name], 1 if name == "ns_steps" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            found.append(f"{key}.kwargs.{name} must be a whole number >= {low}, got {_show(value)}")
    return found


def _number_in(value: Any, low: float, high: float, low_open: bool = False) -> bool:
    """`value` a real number in [low, high) — (low, high) with low_open; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (low < value if low_open else low <= value) and value < high


def _show(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def schedule_problems(schedule: dict, moms_key: str = "schedule.moms") -> list[str]:
    """`moms_key`: where the resolved schedule's momenta came from (`moms_key` below)."""
    found, kind = [], schedule["kind"]
    if kind == "one_cycle":
        if not 0 < schedule["pct_start"] < 1:
            found.append(f"schedule.pct_start must be in (0, 1), got {schedule['pct_start']}")
        if len(schedule["moms"]) != 3:
            found.append("schedule.moms must have 3 values (start, middle, end)")
        if not schedule["div_final"] > 0:  # the LR ends at lr / div_final
            found.append(f"schedule.div_final must be > 0, got {schedule['div_final']}")
    if kind in ("one_cycle", "one_cycle_phases"):
        if not schedule["div"] > 0:
            found.append(f"schedule.div must be > 0, got {schedule['div']}")
        if not all(_number_in(m, 0, 1) for m in schedule["moms"]):  # a momentum >= 1 trains to chance
            found.append(f"{moms_key} must each be in [0, 1), got {list(schedule['moms'])}")
    if kind == "one_cycle_phases":
        found += phase_problems(schedule)
    if kind in ("constant", "step") and schedule.get("momentum") is not None \
            and not _number_in(schedule["momentum"], 0, 1):
        found.append(f"schedule.momentum must be null or in [0, 1), got {schedule['momentum']}")
    if kind == "step":
        if not 0 < schedule["gamma"] <= 1:
            found.append(f"schedule.gamma must be in (0, 1], got {schedule['gamma']}")
        if not all(_number_in(m, 0, math.inf) for m in schedule["milestones"]):
            found.append(f"schedule.milestones must be epochs >= 0, got {list(schedule['milestones'])}")
    return found + warmup_decay_problems(schedule)


def phase_problems(schedule: dict) -> list[str]:
    """one_cycle_phases: lengths (any unit, normalised by their sum), shapes and the final LR divisor."""
    found, parts = [], [schedule[k] for k in ("warmup", "flat", "down", "final")]
    if not (all(_number_in(p, 0, math.inf) for p in parts) and sum(parts) > 0):
        found.append(f"schedule phases (warmup, flat, down, final) must be >= 0 and finite with a positive "
                     f"sum, got {parts}")
    if schedule["final_shape"] not in ("linear", "cosine"):
        found.append("schedule.final_shape: linear or cosine")
    if len(schedule["moms"]) != 2:
        found.append("schedule.moms must have 2 values (high, low)")
    if not schedule["lin_end_div"] > 0:  # the linear final phase ends at lr / (lin_end_div * div)
        found.append(f"schedule.lin_end_div must be > 0, got {schedule['lin_end_div']}")
    return found


def warmup_decay_problems(schedule: dict) -> list[str]:
    """warmup, cosine, wsd: lengths and the final LR multiplier."""
    found, kind = [], schedule["kind"]
    if kind in ("warmup", "wsd"):
        if not schedule["warmup_epochs"] >= 0:
            found.append(f"schedule.warmup_epochs must be >= 0, got {schedule['warmup_epochs']}")
        elif not math.isfinite(schedule["warmup_epochs"]):  # the LR would stay at 0: trained to chance
            found.append(f"schedule.warmup_epochs must be finite, got {schedule['warmup_epochs']}")
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


def optimizer_class_problems(opt: Any, key: str = "optimizer", io_params=None) -> list[str]:
    """`opt`: the typed optimizer config (runners/config.py OptimizerConf)."""
    from .optimizers import check_optimizer_class  # imports torch

    problem = check_optimizer_class(opt._target_, list(opt.kwargs), opt.wd_mode, io_params, opt.cycle_momentum)
    return [f"{key}.{problem}"] if problem else []


def model_problems(task: Any, run: Any, lr: float) -> list[str]:
    """What only the built model can tell, checked before a run records anything: each stage's optimizer
    built over the model on the meta device (no memory, no initialisation; the engine seeds before it
    builds its own) — task.io_params matching no parameter, or leaving none to Muon; a frozen or
    multiplied group the model lacks. A model that cannot be built on the meta device is not checked
    here (fit then reports the problem in its run's status)."""
    import torch

    # Here, not above: the engine and the optimizers import torch, and the spec's checks stay torch-free.
    from .engine import plan_stages, stage_optimizer
    from .optimizers import build_optimizer

    try:  # pretrained weights load into meta parameters as no-ops, each with a warning: not news here
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*to a meta parameter in the current model")
            model = task.build_model()
    except Exception:  # noqa: BLE001 — e.g. weights loaded with a real copy; fit builds it for real
        return []
    opt_cfg = dataclasses.asdict(run.optimizer)
    for stage in plan_stages([dataclasses.asdict(st) for st in run.task.stages], run.epochs):
        try:
            build_optimizer(stage_optimizer(opt_cfg, stage), model, lr * stage.lr_mult, run.task.io_params)
        except (ValueError, TypeError) as exc:
            return [" ".join(str(exc).split())]
    return []
