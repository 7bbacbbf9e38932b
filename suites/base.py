"""The task contract, as AlgoPerf's spec.py is its workloads': the config schema every task extends,
the `Task` interface, and the optional members the engine looks for. Tasks and the engine both import
this module; it imports neither, so a task never knows which optimizer trains it."""
from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Protocol, Sized, runtime_checkable

import torch
from omegaconf import MISSING
from torch import nn

from results.targets import Target

from .splits import SPLITS


# --- Data on disk: where tasks read it, and what `make data` (suites/data) fetches for them.

DATA_ENV = "ONECYCLE_DATA"  # a shared data directory for every task


def data_root(configured: str | None) -> Path:
    """`task.data_dir` when set, else $ONECYCLE_DATA, else ./data."""
    return Path(configured or os.environ.get(DATA_ENV) or "data").expanduser()


# A rehearsal's data (`python -m suites.data fake`) carries this file in its root and in each item's
# directory, so whatever reads it can tell, from the path alone, that it is no measurement.
FABRICATED_MARKER = "FABRICATED.txt"


def fabricated_at(path) -> Path | None:
    """The marker covering `path`: in `path` itself (a directory) or in any of its ancestors, as given
    or once symlinks are resolved (a link to fabricated data is fabricated data); else None."""
    given = Path(path).expanduser().absolute()
    for start in dict.fromkeys([given, given.resolve()]):
        for directory in ([start] if start.is_dir() else []) + list(start.parents):
            if (directory / FABRICATED_MARKER).is_file():
                return directory / FABRICATED_MARKER
    return None


@dataclass(frozen=True)
class DataNeed:
    """Something a task reads from disk and `make data` can fetch: an item of suites.data's registry
    (`cifar10`, `wikitext2`, `stanford_cars`, `weights:<arch>/<weights>`), the path the task reads it
    at, and whether its checksums or counts are verified (a task may read files that cannot match them)."""

    item: str
    path: Path
    verify: bool = True


# --- Config schema (Hydra ConfigStore): an unknown key or a wrong type fails at compose time. The run id
# hashes the resolved config, so renaming or adding a field here changes every run id.

@dataclass
class StageConf:
    """A training stage (fine-tuning: head only, then all): its share of the run's epochs, the LR
    multiplier on the run's base LR, frozen parameter groups and per-group LR multipliers. Each stage
    gets a fresh optimizer and runs the whole schedule over its own epochs (as fastai's fit calls)."""

    name: str = "train"
    frac: float = 1.0
    lr_mult: float = 1.0
    freeze: List[str] = field(default_factory=list)
    group_lr_mult: Dict[str, float] = field(default_factory=dict)


@dataclass
class SearchConf:
    """A task's tuning space per optimizer (issue 13): LR log-uniform in [lr0 / lr_factor, lr0 * lr_factor]
    and WD log-uniform in [wd0 / wd_factor, wd0 * wd_factor], centred on the sourced lr0 = task.lr[...]
    and wd0 = task.wd[...] (a wd0 of 0 is not tuned). Each task yaml says why its factors."""

    lr_factor: float = 10.0
    wd_factor: float = 10.0

    def problems(self) -> list[str]:
        return [f"{n} must be > 1 and finite (the space is [value / {n}, value * {n}]), got {getattr(self, n)}"
                for n in ("lr_factor", "wd_factor")
                if not (math.isfinite(getattr(self, n)) and getattr(self, n) > 1)]


@dataclass
class TaskConf:
    """Fields every task has; a task's own schema subclasses this and adds its data/model options."""

    _target_: str = MISSING  # the Task class, built as `cls(cfg, device)`
    name: str = MISSING
    epochs: int = MISSING  # the budget: maximum epochs for this task
    target: Target = MISSING  # results/targets.py: the one definition, shared with the report
    # The schedule used "without 1cycle" (schedule=reference): a schedule config, kind + parameters.
    reference: Dict[str, Any] = field(default_factory=dict)
    # Base LR per optimizer name, or per "optimizer/schedule" (more specific wins).
    lr: Dict[str, float] = field(default_factory=dict)
    # Weight decay per optimizer name, or per "optimizer/schedule", sourced as `lr`; applies when
    # optimizer.weight_decay is null. 0: no decay (and none tuned).
    wd: Dict[str, float] = field(default_factory=dict)
    # Max global gradient norm per optimizer name, or per "optimizer/schedule", sourced as `lr`; applies
    # when the run's top-level clip_grad is null. Absent: no clipping.
    clip_grad: Dict[str, float] = field(default_factory=dict)
    # 1cycle's momentum range (high, low): SGD's momentum or Adam's beta1 goes high -> low -> high, for a
    # one_cycle / one_cycle_phases schedule that does not set its own `moms`, and for an optimizer that
    # cycles it (optimizer.cycle_momentum). Default: fastai's (0.95, 0.85), fit_one_cycle's moms.
    moms: List[float] = field(default_factory=lambda: [0.95, 0.85])
    search: SearchConf = field(default_factory=SearchConf)
    # The model's input/output layers (first layer, embeddings, classifier head): fnmatch patterns of
    # model.named_parameters() names. An optimizer that trains hidden weight matrices differently
    # (Muon: runners/muon.py) gives these, and every parameter with ndim < 2, to AdamW instead, as
    # Muon's authors prescribe (Jordan et al. 2024, kellerjordan.github.io/posts/muon). Empty: not set.
    io_params: List[str] = field(default_factory=list)
    # test: train on the whole training set, evaluate on the test set. validation: hold out part of the
    # training set and evaluate on it only, metrics named val_* (suites/splits.py; tuning trials).
    split: str = "test"
    stages: List[StageConf] = field(default_factory=list)  # empty: one stage, nothing frozen
    # The real dataset's size per epoch, {"train": N, "eval": M, "unit": "image" | "token"}, with its
    # source where it is set; {}: generated or bundled data. A ClassVar, not a field: no run id changes.
    published_items: ClassVar[dict] = {}

    def data_needs(self) -> list[DataNeed]:
        """What this task reads from disk that `make data` fetches (none: generated or bundled data)."""
        return []

    def fabricated(self, root: Path) -> dict:
        """The overrides (keys of this task node) that point this task at the fabricated data
        `python -m suites.data fake` writes under `root` (none: generated or bundled data)."""
        return {}

    def problems(self) -> list[str]:
        """The values this task cannot run with, one message each, keys relative to the task node
        (runners/spec.py `validate` prefixes `task.` and refuses the run before writing anything).
        A subclass extends it: `return super().problems() + at_least(self, 1, "batch_size", ...)`."""
        found = at_least(self, 1, "epochs")
        found += [f"lr[{k}] must be > 0 and finite, got {v}" for k, v in self.lr.items()
                  if not (math.isfinite(v) and v > 0)]
        found += [f"wd[{k}] must be >= 0 and finite, got {v}" for k, v in self.wd.items()
                  if not (math.isfinite(v) and v >= 0)]
        found += [f"clip_grad[{k}] must be > 0 and finite, got {v}" for k, v in self.clip_grad.items()
                  if not (math.isfinite(v) and v > 0)]
        if len(self.moms) != 2 or not all(0 <= m < 1 for m in self.moms):
            found.append(f"moms must be 2 values (high, low), each in [0, 1), got {list(self.moms)}")
        found += [f"search.{p}" for p in self.search.problems()] + one_of(self, "split", SPLITS)
        for i, stage in enumerate(self.stages):
            found += at_least(stage, 0, "lr_mult", prefix=f"stages[{i}].")
        return found


# Helpers for `problems`: each returns a message per field of `conf` that is out of range.

def at_least(conf: Any, minimum: float, *names: str, prefix: str = "") -> list[str]:
    return [f"{prefix}{n} must be >= {minimum}, got {getattr(conf, n)}" for n in names
            if getattr(conf, n) < minimum]


def optional_at_least(conf: Any, minimum: float, *names: str) -> list[str]:
    return [f"{n} must be null or >= {minimum}, got {getattr(conf, n)}" for n in names
            if getattr(conf, n) is not None and getattr(conf, n) < minimum]


def probabilities(conf: Any, *names: str) -> list[str]:
    """Dropout-like rates, each in [0, 1); a field may hold a list of them."""
    found = []
    for n in names:
        value = getattr(conf, n)
        if any(not 0 <= v < 1 for v in (value if isinstance(value, list) else [value])):
            found.append(f"{n} must be in [0, 1), got {value}")
    return found


def one_of(conf: Any, name: str, choices) -> list[str]:
    value = getattr(conf, name)
    return [] if value in choices else [f"{name} must be one of {list(choices)}, got {value!r}"]


# --- The interface.

class Task(ABC):
    """Five members. Built as `TaskClass(cfg, device)` from its config (a TaskConf subclass).

    The engine seeds torch before `build_model`, calls `train_batches` once per epoch with a generator
    seeded from (seed, epoch) — so an epoch's data order and augmentation are reproducible on resume —
    and wraps `evaluate` in eval mode, no_grad and the run's autocast. Optional members, each probed for
    by the engine, are the protocols below.
    """

    metrics: tuple[str, ...] = ()  # the names `evaluate` returns; the target metric is one of them

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model (on CPU; the engine moves it); may be `NamedParamGroups`."""

    @abstractmethod
    def train_batches(self, epoch: int, generator: torch.Generator) -> Sized:
        """The epoch's training batches, on the task's device, in a sized iterable."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Training loss of one batch, regularisation terms included."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Every metric in `metrics`, on the held-out data."""


# --- Optional members of a task, its model and its batches: none is required. The engine reads a run's
# once, when it starts (runners/capabilities.py), through these runtime-checkable protocols; an
# optimizer's are declared in runners/optimizers.py.

@runtime_checkable
class NamedParamGroups(Protocol):
    """A model: its parameters by group name (body -> head), for freezing and per-group LRs.
    Implemented by suites/vision/resnet_head.py:BodyHead and suites/digits.py:SmallResNet."""

    def param_groups(self) -> dict[str, list[nn.Parameter]]: ...


@runtime_checkable
class ScaledBatch(Protocol):
    """A batch: the LR is multiplied by `lr_scale` for its step (variable-length BPTT: seq_len / bptt).
    Implemented by suites/text/data.py:TextBatch."""

    lr_scale: float


@runtime_checkable
class EpochEndHook(Protocol):
    """A task: called after each epoch's evaluation with that epoch's row (1-based). No task needs it
    yet; an optimizer's is runners/optimizers.py's OptimizerEpochEnd."""

    def on_epoch_end(self, epoch: int, row: dict) -> None: ...


@runtime_checkable
class FinalMetrics(Protocol):
    """A task: end-of-run metrics named in `final_metrics`, which the engine computes on the last epoch
    only, in `evaluate`'s context, and adds to that epoch's row.
    Implemented by suites/text/tasks.py:LanguageModelTask (the blog's LM evaluation)."""

    final_metrics: tuple[str, ...]

    def evaluate_final(self, model: nn.Module) -> dict[str, float]: ...
