"""A run, resolved once. `resolve_run` turns a composed config (Hydra's DictConfig, read at the entry
points only: the train CLI, the grid's jobs, the tuner, the plan) into a frozen `RunSpec`: the typed run
config the engine reads, the schedule with `reference` substituted, the LR, weight decay and clipping
each with its origin, the pre-training run it depends on (itself a spec), the resolved config that
`config.yaml` holds and the run id hashes, and the run's directory. Below it nothing reads a DictConfig.

Importing it loads no torch: the checks that need torch import it when they run."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from results import records
from results.errors import UserError
from results.layout import PRETRAIN_SUITE, Layout

from .checks import (device_problems, lr_problems, moms_key, name_problems, optimizer_class_problems,
                     optimizer_problems, run_problems, schedule_problems, task_problems, unknown_keys)
from .config import SCHEDULE_SCHEMAS, RunConf

# What the pre-training run takes from the run that needs it: where and how it computes, not what.
PRETRAIN_INHERITS = ("device", "precision", "deterministic", "channels_last", "compile", "threads",
                     "progress", "results_dir")


class Sourced(NamedTuple):
    """A resolved setting and where it came from (`optimizer.lr`, `task.lr[adamw]`, ...)."""

    value: float | None
    origin: str

    def as_dict(self) -> dict:
        return {"value": self.value, "origin": self.origin}


@dataclass(frozen=True)
class RunSpec:
    run: RunConf  # typed: the optimizer's weight decay and the run's clip_grad resolved
    schedule: Mapping[str, Any]  # resolved: `reference` substituted, 1cycle's momentum from the task
    config: Mapping[str, Any]  # what config.yaml holds and the run id hashes
    lr: Sourced | None  # None: the run's LR range test gives it (runners/lr_find.py)
    weight_decay: Sourced
    clip_grad: Sourced
    pretrain: RunSpec | None  # trained (or found) first; its checkpoint starts this run
    path: Path  # <results_dir>/runs/<suite>/<run_id>

    @property
    def run_id(self) -> str:
        return self.path.name

    def config_yaml(self) -> str:
        """config.yaml's text: the resolved config the run id hashes."""
        return OmegaConf.to_yaml(OmegaConf.create(dict(self.config)))

    def with_output(self, **changes) -> RunSpec:
        """The same run, recorded or paced otherwise (records.OUTPUT_ONLY_KEYS that leave its directory
        where it is: `halt_after`, `progress`, ...): the run id and directory stay."""
        fixed = set(changes) - (set(records.OUTPUT_ONLY_KEYS) - {"suite", "results_dir"})
        if fixed:
            raise ValueError(f"{sorted(fixed)} change what the run is: compose and resolve a new spec")
        return replace(self, run=replace(self.run, **changes), config={**self.config, **changes})

    def with_budget(self, epochs: int, stop_at_target: bool) -> RunSpec:
        """The same run at another budget (a probe of a cell's budget search): a run of its own."""
        if epochs < max(1, len(self.run.task.stages)):
            raise UserError(f"epochs={epochs} is fewer than the task's {len(self.run.task.stages)} stages")
        config = {**self.config, "epochs": epochs, "stop_at_target": stop_at_target}
        run = replace(self.run, epochs=epochs, stop_at_target=stop_at_target)
        return replace(self, run=run, config=config, path=self.path.parent / records.run_id(config))

    def with_task(self, **changes) -> RunSpec:
        """The spec with task fields known only once the run starts (the pre-training checkpoint); they
        never change what the run computes, so neither the config nor the run id moves."""
        return replace(self, run=replace(self.run, task=replace(self.run.task, **changes)))


def resolve_run(cfg: DictConfig) -> RunSpec:
    """The spec of the run `cfg` describes, its values checked (UserError: the first problem, one line;
    names that become paths first). Reading a config never trains a model."""
    schedule = resolve_schedule(cfg)
    lr, wd, clip = configured_lr(cfg), configured_wd(cfg), configured_clip(cfg)
    validate(cfg, schedule, lr.value if lr else None)
    config = {**OmegaConf.to_container(cfg, resolve=True), "schedule": schedule}
    run = OmegaConf.to_object(cfg)
    run.optimizer.weight_decay, run.clip_grad = wd.value, clip.value
    if getattr(run.task, "cache_dir", "unset") is None:  # the task caches under the run's results_dir
        run.task.cache_dir = str(Layout.at(cfg.results_dir).cache())
    return RunSpec(run=run, schedule=schedule, config=config, lr=lr, weight_decay=wd, clip_grad=clip,
                   pretrain=pretrain_spec(cfg),
                   path=records.run_dir(cfg.results_dir, cfg.suite, records.run_id(config)))


def pretrain_spec(cfg: DictConfig) -> RunSpec | None:
    """The run a task's `pretrain` block names (suites/vision/digits_twins.py PretrainConf), in the
    `pretrain` suite (runs apart from every suite's, shared by all), computing where and how this run
    does. Its task schema comes from the ConfigStore (runners/config.py register_configs): a config read
    back from a grid's cell file has lost its types."""
    pre = cfg.task.get("pretrain")
    if not pre:
        return None
    schema = ConfigStore.instance().load(f"schema/task/{pre.task.name}.yaml").node
    run = OmegaConf.merge(OmegaConf.structured(RunConf), {
        "task": OmegaConf.merge(schema, pre.task), "optimizer": pre.optimizer, "schedule": pre.schedule,
        "seed": pre.seed, "suite": PRETRAIN_SUITE, "keep_checkpoint": True,
        **{k: cfg[k] for k in PRETRAIN_INHERITS}})
    return resolve_run(run)


def resolve_schedule(cfg: DictConfig) -> dict:
    """The schedule to run as a plain dict; `reference` becomes the task's reference schedule,
    checked against its kind's schema. A 1cycle schedule without its own `moms` gets the task's range
    (task.moms: high, low), so the resolved config — config.yaml, the run id — states the one it ran."""
    if cfg.schedule.kind != "reference":
        return with_task_moms(OmegaConf.to_container(cfg.schedule, resolve=True), cfg.task)
    ref = OmegaConf.to_container(cfg.task.reference, resolve=True)
    kind = ref.get("kind")
    if kind not in SCHEDULE_SCHEMAS:
        raise UserError(f"task.reference.kind is {kind!r}; expected one of {sorted(SCHEDULE_SCHEMAS)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SCHEDULE_SCHEMAS[kind]), ref)
    except Exception as exc:  # omegaconf's message names the key
        raise UserError(f"task.reference: {exc}".splitlines()[0]) from None
    out = OmegaConf.to_container(merged, resolve=True)
    out["name"] = "reference"
    return with_task_moms(out, cfg.task)


def with_task_moms(schedule: dict, task: DictConfig) -> dict:
    """`schedule` with `moms` from the task when it has none: one_cycle's (high, low, high) — fastai
    v2's shape —, one_cycle_phases' (high, low)."""
    if schedule.get("kind") not in ("one_cycle", "one_cycle_phases") or schedule.get("moms") is not None:
        return schedule
    moms = list(task.get("moms") or (0.95, 0.85))  # a task config without the field: TaskConf's default
    if len(moms) != 2:  # resolved before validate runs: the same message as TaskConf.problems
        raise UserError(f"task.moms must be 2 values (high, low), each in [0, 1), got {moms}")
    return {**schedule, "moms": [*moms, moms[0]] if schedule["kind"] == "one_cycle" else moms}


def from_table(cfg: DictConfig, table: Mapping, name: str) -> Sourced | None:
    """A task table's entry for this run: `optimizer/schedule` first, then `optimizer`."""
    for key in (f"{cfg.optimizer.name}/{cfg.schedule.name}", cfg.optimizer.name):
        if key in table:
            return Sourced(float(table[key]), f"task.{name}[{key}]")
    return None


def configured_lr(cfg: DictConfig) -> Sourced | None:
    """Base LR and where it came from — the optimizer config/CLI, or the task's table — or None when the
    config gives none (then the run's LR range test gives it)."""
    if cfg.optimizer.lr is not None:
        return Sourced(float(cfg.optimizer.lr), "optimizer.lr")
    return from_table(cfg, cfg.task.lr, "lr")


def configured_wd(cfg: DictConfig) -> Sourced:
    """Weight decay: the optimizer config/CLI, else the task's sourced table (task.wd), else 0."""
    if cfg.optimizer.weight_decay is not None:
        return Sourced(float(cfg.optimizer.weight_decay), "optimizer.weight_decay")
    return from_table(cfg, cfg.task.get("wd") or {}, "wd") or Sourced(0.0, "none given: 0")


def configured_clip(cfg: DictConfig) -> Sourced:
    """Max gradient norm: the run's clip_grad (0: none), else the task's table (task.clip_grad), else none."""
    if cfg.clip_grad is not None:
        return Sourced(float(cfg.clip_grad), "clip_grad") if cfg.clip_grad else \
            Sourced(None, "clip_grad=0: no clipping")
    return from_table(cfg, cfg.task.get("clip_grad") or {}, "clip_grad") or \
        Sourced(None, "none given: no clipping")


def validate(cfg: DictConfig, schedule: dict, lr: float | None) -> None:
    """Value checks, each naming the key at fault (`lr` None: the LR range test will give it); raises
    UserError with the first problem, one line. Names that become paths are checked first."""
    unknown = unknown_keys(cfg)
    found = name_problems(cfg) + ([f"unknown config key(s) {unknown}: not in the schema (see "
                                   f"runners/config.py and the task's schema in suites/)"] if unknown else [])
    found += run_problems(cfg) + optimizer_problems(cfg.optimizer)
    found += schedule_problems(schedule, moms_key(cfg))
    found += task_problems(cfg.task)  # before the LR's: a bad task.lr entry is named as such there
    if lr is not None:
        source = configured_lr(cfg)
        key = source.origin if source and source.value == lr else "optimizer.lr"
        found += lr_problems(cfg, lr, key, configured_wd(cfg).value)
    if not found:  # the checks that import torch (when called), once the cheap ones pass
        found += device_problems(cfg.device)
        found += optimizer_class_problems(OmegaConf.to_object(cfg.optimizer), io_params=cfg.task.get("io_params"))
    if found:
        raise UserError(found[0])
