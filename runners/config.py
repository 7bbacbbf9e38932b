"""Typed config schemas (Hydra ConfigStore), so an unknown key or a wrong type fails at compose time.
The value checks a type cannot express, and the resolution of a composed config into a run, are
runners/spec.py's. The task schemas are the task contract's (suites/base.py); the entry points pass
their registry to `register_configs`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class OptimizerConf:
    _target_: str = MISSING
    name: str = MISSING
    lr: Optional[float] = None  # None: the task's LR for this optimizer
    weight_decay: Optional[float] = None  # None: the task's sourced value for this optimizer (task.wd)
    wd_mode: str = "decoupled"  # l2 | decoupled | native (see runners/optimizers.py)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    no_decay_bias_norm: bool = True
    group_lr_mult: Dict[str, float] = field(default_factory=dict)
    freeze: List[str] = field(default_factory=list)
    # Whether a schedule's momentum (1cycle's; constant/step's `momentum`) is applied, to SGD's momentum or
    # Adam's beta1 (conf/optimizer/*.yaml cite why). False: the class keeps its own (runners/optimizers.py).
    cycle_momentum: bool = False


@dataclass
class OneCycleConf:
    name: str = "one_cycle"
    kind: str = "one_cycle"
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: Optional[List[float]] = None  # (start, middle, end); None: the task's (high, low, high)


@dataclass
class OneCyclePhasesConf:
    name: str = "one_cycle_phases"
    kind: str = "one_cycle_phases"
    warmup: float = 0.4625  # the blog's CIFAR split 13.875 / 13.875 / 2.25 of 30 epochs
    flat: float = 0.0
    down: float = 0.4625
    final: float = 0.075
    div: float = 10.0
    moms: Optional[List[float]] = None  # (high, low); None: the task's task.moms
    final_shape: str = "linear"  # linear (to lr/(lin_end_div*div)) | cosine (to 0)
    lin_end_div: float = 100.0


@dataclass
class ConstantConf:
    name: str = "constant"
    kind: str = "constant"
    momentum: Optional[float] = None


@dataclass
class StepConf:
    name: str = "step"
    kind: str = "step"
    milestones: List[float] = field(default_factory=list)  # in epochs
    gamma: float = 0.1
    momentum: Optional[float] = None


@dataclass
class WarmupConf:
    """Linear warm-up, then constant: Schedule-Free AdamW's only schedule (Defazio et al. 2024)."""

    name: str = "warmup"
    kind: str = "warmup"
    warmup_epochs: float = 1.0


@dataclass
class CosineConf:
    name: str = "cosine"
    kind: str = "cosine"
    warmup_pct: float = 0.05
    final: float = 0.0  # multiplier of the base LR at the end


@dataclass
class WsdConf:
    """Warm-up-stable-decay (runners/schedules.py wsd). Defaults: a cooldown over the last 20% of the
    budget, the length at which Hägele et al. 2024 (arXiv:2405.18392, sec. 3) found constant LR +
    cooldown matching cosine; linear, their baseline shape ("1-sqrt", which they found better on LLMs,
    is cooldown_shape=sqrt); one warm-up epoch, the twins' smallest whole unit (a function of epochs, so
    the stable prefix is the same for every budget)."""

    name: str = "wsd"
    kind: str = "wsd"
    warmup_epochs: float = 1.0
    cooldown_frac: float = 0.2
    final: float = 0.0
    cooldown_shape: str = "linear"  # linear (1 - t) | sqrt (1 - sqrt(t), Hägele et al.'s "1-sqrt")
    stable_only: bool = False  # no cooldown: the grid's trunk run (runners/grid/wsd.py), never a cell


@dataclass
class ReferenceConf:
    """'Without 1cycle': replaced at run time by the task's `reference` schedule."""

    name: str = "reference"
    kind: str = "reference"


SCHEDULE_SCHEMAS = {"one_cycle": OneCycleConf, "one_cycle_phases": OneCyclePhasesConf,
                    "constant": ConstantConf, "step": StepConf, "warmup": WarmupConf, "cosine": CosineConf,
                    "wsd": WsdConf}


@dataclass
class LRFindConf:
    """LR range test (runners/lr_find.py), used when neither optimizer.lr nor the task's table gives an
    LR: an exponential ramp start_lr -> end_lr over `steps` batches, stopped once the smoothed loss
    exceeds `divergence` x its best; picks (LR at the lowest smoothed loss) / `divisor`."""

    steps: int = 200
    start_lr: float = 1.0e-7
    end_lr: float = 10.0
    smoothing: float = 0.98  # EMA factor of the loss, debiased (fastai)
    divergence: float = 4.0
    divisor: float = 10.0
    seed: int = 0


@dataclass
class RunConf:
    task: Any = MISSING
    optimizer: OptimizerConf = MISSING
    schedule: Any = MISSING
    suite: str = "adhoc"
    # The conf/recipe overlay the run was composed with (each overlay names itself): a published run
    # (the blog's, awd-lstm-lm's, the WRN paper's) rather than a grid cell. Part of the run id.
    recipe: Optional[str] = None
    seed: int = 0
    epochs: int = "${task.epochs}"  # type: ignore[assignment]  # budget; 1cycle spans exactly this
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False
    clip_grad: Optional[float] = None  # max global grad norm; null: the task's (task.clip_grad); 0: none
    accum_steps: int = 1
    stop_at_target: bool = False  # only honoured for budget-free schedules (constant, step)
    deterministic: bool = False
    threads: Optional[int] = None  # torch CPU threads; None: torch's default (one per core)
    progress: Optional[bool] = None  # None: a bar when stderr is a TTY
    keep_checkpoint: bool = False  # keep the last checkpoint once the run has ended
    force: bool = False  # rerun even a completed run (the old directory is moved aside, not deleted)
    results_dir: str = "${oc.env:ONECYCLE_RESULTS,results}"
    lr_find: LRFindConf = field(default_factory=LRFindConf)
    # A tuning trial's number in its study (runners/grid/tuning.py): recorded, never part of the run id, so a
    # trial retried under a new number resumes the same run.
    tuning_trial: Optional[int] = None
    # Output-only too (records.OUTPUT_ONLY_KEYS), for WSD's trunk run (runners/grid/wsd.py): stop after
    # this epoch, the run left resumable ("halted"); and keep every epoch's checkpoint, to branch from.
    halt_after: Optional[int] = None
    keep_epoch_checkpoints: bool = False
    # A rehearsal's cap (runners/grid/rehearsal.py): at most this many training batches an epoch, the
    # schedule spanning the capped epoch; the run also counts one step's FLOPs (its profile). Part of the
    # run id when set (records.HASHED_WHEN_SET); null: whole epochs.
    limit_batches: Optional[int] = None


def register_configs(task_schemas: Mapping[str, type]) -> None:
    """Store the run schema, and under the `schema/` group the optimizer's (`schema/optimizer`), each
    schedule kind's (`schema/schedule/<kind>`) and `task_schemas`' (task name -> TaskConf subclass, i.e.
    suites.TASK_SCHEMAS: `schema/task/<name>`). A yaml pulls its schema in with an absolute defaults
    entry (`- /schema/task/<name>@_here_`); kept out of the task/optimizer/schedule groups so that Hydra's
    list of options for an unknown choice holds only real choices. Taken as an argument so that runners/
    never imports suites/ to find them."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConf)
    cs.store(group="schema", name="optimizer", node=OptimizerConf)
    for kind, schema in {**SCHEDULE_SCHEMAS, "reference": ReferenceConf}.items():
        cs.store(group="schema/schedule", name=kind, node=schema)
    for name, schema in task_schemas.items():
        cs.store(group="schema/task", name=name, node=schema)
