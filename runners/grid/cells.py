"""A suite's cells: one per (task, optimizer, schedule, seed) of its declared sweep, and one per
(published recipe, seed), each a composed config of conf/grid.yaml. Expanded here, once, for the run,
the plan and the summary alike.

A suite (conf/suite/NAME.yaml) declares `grid.sweep` (values in Hydra's sweep syntax: `a,b`,
`range(3)`), optional `grid.pairs` (explicit optimizer/schedule pairs that restrict the sweep's product),
`grid.extra_pairs` (optimizer/schedule pairs one task adds to it: the language models' NT-ASGD),
`grid.per_task` overrides and `grid.recipes`. The user's overrides on the command line either replace a
swept key (`optimizer=adamw,sgd`, `task=digits_resnet`) or apply to every cell; with pairs, a replaced
optimizer or schedule narrows the product and the pairs keep what it still contains; an extra pair is
kept when the replaced values still include its optimizer and schedule.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from results import records
from results.errors import UserError

from ..config import RunConf, register_configs, resolve_schedule
from ..overrides import hydra_error, resolved
from ..schedules import BUDGET_FREE
from .rehearsal import RehearsalSettings

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
RECIPE_FIXED = ("optimizer", "schedule")  # a recipe overlay picks these itself
PAIR_KEYS = ("optimizer", "schedule")  # a grid.pairs entry is "optimizer/schedule"
PAIR = re.compile(r"[^/]+/[^/]+")
# Tuning trials run seed TRIAL_SEED_BASE + grid.tuning.seed, a seed no suite sweeps: on the language
# models the validation split is the verdict's, so a cell at the trials' seed would repeat a selected trial.
TRIAL_SEED_BASE = 1000


@dataclass
class TuningSettings:
    """The tuning protocol (runners/tuning.py), the same for every cell of a suite. Grid-only: the tuned
    values enter a run's config, the protocol itself never does."""

    trials: int = 0  # per (task, optimizer, schedule); 0: not tuned, the sourced values (task.lr, task.wd)
    # A 1cycle trial's budget in epochs per task (the claim's own epochs); else this fraction of the max.
    budget: Dict[str, int] = field(default_factory=dict)
    budget_fraction: float = 0.5
    # The sampler's scramble; every trial runs seed TRIAL_SEED_BASE + seed, one no verdict may read.
    seed: int = 0
    # Where the studies live: null -> sqlite:///<results_dir>/tuning/<suite>.db (one machine);
    # "journal" -> <results_dir>/tuning/<suite>.journal (Optuna's file journal, safe on NFS / SLURM);
    # or any database URL (postgresql://..., mysql://...).
    storage: Optional[str] = None
    # Successive halving on the per-epoch validation metric, for budget-free schedules only (a decaying
    # schedule's mid-run metric does not predict its end: runners/tuning.py).
    pruning: bool = False
    min_resource: int = 1  # the first rung, in epochs
    reduction_factor: int = 3  # 1 trial in 3 goes on at each rung

    def problems(self) -> list[str]:
        found = []
        if self.trials < 0:
            found.append(f"grid.tuning.trials must be >= 0, got {self.trials}")
        if self.seed < 0:  # keeps trial seeds in the reserved range
            found.append(f"grid.tuning.seed must be >= 0, got {self.seed}")
        if not 0 < self.budget_fraction <= 1:
            found.append(f"grid.tuning.budget_fraction must be in (0, 1], got {self.budget_fraction}")
        found += [f"grid.tuning.budget[{k}] must be >= 1, got {v}" for k, v in self.budget.items() if v < 1]
        if self.min_resource < 1 or self.reduction_factor < 2:
            found.append("grid.tuning.min_resource must be >= 1 and reduction_factor >= 2")
        return found


@dataclass
class GridSettings:
    """Grid-only settings: not part of any run's config, so they never change a run id."""

    # The suite's sweep: key -> values in Hydra sweep syntax ({task: "a,b", seed: "range(2)"}).
    sweep: Dict[str, str] = field(default_factory=dict)
    ladder_start: int = 1  # first budget probed by the search (raised to the task's stage count)
    ladder_factor: float = 2.0
    # Plan's cost estimate: an unknown probe is assumed to hit iff its budget >= this fraction of the max.
    assumed_fraction: float = 0.5
    # Seconds per epoch by task (measured or published), for the plan's GPU-hours; records override it.
    epoch_seconds: Dict[str, float] = field(default_factory=dict)
    # Explicit (optimizer, schedule) pairs, "optimizer/schedule" each: the sweep's product keeps only these
    # (modern: sf_adamw runs with warmup only, not with every schedule). Empty: the full product.
    pairs: List[str] = field(default_factory=list)
    # Per task, "optimizer/schedule" pairs added to its cells, each crossed with the other swept keys
    # (seeds) and tuned like any cell: a baseline only some tasks have (blog: the LMs' ntasgd/reference).
    extra_pairs: Dict[str, List[str]] = field(default_factory=dict)
    # Extra overrides per task, e.g. its own optimizer sweep: {awd_lstm_wt2: ["optimizer=ntasgd,adamw"]}.
    per_task: Dict[str, List[str]] = field(default_factory=dict)
    # Published recipes (conf/recipe/) per task, each an extra cell swept over seeds only and run once
    # at its own budget, as published (budget_search=false).
    recipes: Dict[str, List[str]] = field(default_factory=dict)
    # False: no budget search, one run at the task's budget (a recipe cell: the run as published;
    # stopped at the target when its schedule is budget-free).
    budget_search: bool = True
    # Joblib workers: one CUDA device each (a list of ids); empty on CPU: torch threads split evenly.
    worker_devices: List[str] = field(default_factory=list)
    n_workers: Optional[int] = None  # set by the grid for joblib (CPU thread split)
    # The job: its index into the launch's cells, written by the grid (one file each) before it launches.
    cell: Optional[int] = None
    cells_dir: Optional[str] = None
    # This launch's progress (runners/grid/progress.py): its plan and a file per ended cell.
    progress_dir: Optional[str] = None
    tuning: TuningSettings = field(default_factory=TuningSettings)
    rehearsal: RehearsalSettings = field(default_factory=RehearsalSettings)  # rehearsal=true: grid/rehearsal.py

    def problems(self) -> list[str]:
        """Values the search or the plan cannot use (messages name the key, `grid.` included)."""
        found = []
        if self.ladder_start < 1:
            found.append(f"grid.ladder_start must be >= 1, got {self.ladder_start}")
        if not (self.ladder_factor > 1 and math.isfinite(self.ladder_factor)):  # else the ladder never climbs
            found.append(f"grid.ladder_factor must be > 1 and finite, got {self.ladder_factor}")
        if not 0 <= self.assumed_fraction <= 1:
            found.append(f"grid.assumed_fraction must be in [0, 1], got {self.assumed_fraction}")
        found += [f"grid.epoch_seconds[{k}] must be > 0, got {v}" for k, v in self.epoch_seconds.items()
                  if not v > 0]
        if self.n_workers is not None and self.n_workers < 1:
            found.append(f"grid.n_workers must be null or >= 1, got {self.n_workers}")
        if self.cell is not None and self.cell < 0:
            found.append(f"grid.cell must be null or >= 0, got {self.cell}")
        return found + self.pair_problems() + self.tuning.problems() + self.rehearsal.problems()

    def swept(self, key: str) -> list[str]:
        """The values of `key` in the suite's sweep and its per-task sweeps."""
        values = sweep_values(f"{key}={self.sweep[key]}")[1] if key in self.sweep else []
        for arg in (a for args in self.per_task.values() for a in args):
            arg_key, arg_values = sweep_values(arg)
            values += arg_values if arg_key == key else []
        return list(dict.fromkeys(values))

    def pair_problems(self) -> list[str]:
        """Each pair is "optimizer/schedule", both among the swept values (else it could never run)."""
        found = [f"grid.extra_pairs[{task}]: {pair!r} is not 'optimizer/schedule'"
                 for task, pairs in self.extra_pairs.items() for pair in pairs if not PAIR.fullmatch(str(pair))]
        for pair in self.pairs:
            if not PAIR.fullmatch(str(pair)):
                found.append(f"grid.pairs: {pair!r} is not 'optimizer/schedule'")
                continue
            for key, value in zip(PAIR_KEYS, str(pair).split("/")):
                swept = self.swept(key)
                if value not in swept:
                    found.append(f"grid.pairs: {pair!r} names {key} {value!r}, which grid.sweep.{key} does "
                                 f"not include ({', '.join(swept) or 'not swept'})")
        return found

    def pair_set(self) -> set[tuple[str, str]]:
        return {tuple(str(p).split("/")) for p in self.pairs}


@dataclass
class GridConf(RunConf):
    grid: GridSettings = field(default_factory=GridSettings)


def register_grid_configs() -> None:
    from suites import TASK_SCHEMAS  # the entry point registers the tasks' schemas

    register_configs(TASK_SCHEMAS)
    ConfigStore.instance().store(name="grid_schema", node=GridConf)


def compose_many(override_lists: list[list[str]], with_hydra: bool = False) -> list[DictConfig]:
    """Configs of conf/grid.yaml (one Hydra initialisation for all: it is the slow part)."""
    register_grid_configs()
    GlobalHydra.instance().clear()
    out = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in override_lists:
            try:  # interpolations resolved once: `epochs=${nope}` fails here, not in a job
                out.append(resolved(compose("grid", overrides=list(overrides), return_hydra_config=with_hydra)))
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(f"{' '.join(overrides)}: {hydra_error(exc)}") from None
    GlobalHydra.instance().clear()
    return out


def sweep_values(override: str) -> tuple[str, list[str]]:
    """'optimizer=a,b' -> ('optimizer', ['a', 'b']); any Hydra sweep syntax, a plain value gives one."""
    parsed = OverridesParser.create().parse_override(override)
    values = ([str(v) for v in parsed.sweep_string_iterator()] if parsed.is_sweep_override()
              else [parsed.get_value_element_as_str()])
    return parsed.get_key_element(), values


def split_args(args: list[str], swept: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(swept key -> its values, the other overrides): a swept key or any sweep replaces the suite's."""
    sweeps, fixed = {}, []
    parser = OverridesParser.create()
    for arg in args:
        key, values = sweep_values(arg)
        if key in swept or parser.parse_override(arg).is_sweep_override():
            sweeps[key] = values
        else:
            fixed.append(arg)
    return sweeps, fixed


def cell_overrides(suite: str, user_args: list[str]) -> tuple[list[list[str]], list[str]]:
    """The override list of every cell of the suite, and the declared tasks not present here."""
    base = compose_many([[f"suite={suite}", *split_args(user_args, set())[1]]])[0]
    settings: GridSettings = OmegaConf.to_object(base.grid)
    if settings.pair_problems():  # before the product: a bad pair would only show as missing cells
        raise UserError(settings.pair_problems()[0])
    pairs = settings.pair_set()
    declared = {k: sweep_values(f"{k}={v}")[1] for k, v in base.grid.sweep.items()}
    sweeps, fixed = split_args(user_args, set(declared))
    declared.update(sweeps)
    tasks = declared.pop("task", [base.task.name])
    present = [t for t in tasks if (CONF_DIR / "task" / f"{t}.yaml").exists()]
    cells = []
    for task in present:
        task_sweeps, task_fixed = split_args(list(base.grid.per_task.get(task, [])), set(declared))
        keys = {**declared, **task_sweeps}
        common = [f"suite={suite}", f"task={task}", *task_fixed]
        combos = [dict(zip(keys, combo)) for combo in itertools.product(*keys.values())]
        if settings.pairs:
            combos = [c for c in combos if (c.get("optimizer"), c.get("schedule")) in pairs]
            if not combos:
                swept = " and ".join(f"{k}={','.join(keys.get(k, []))}" for k in PAIR_KEYS)
                raise UserError(f"grid.pairs keeps no cell of {task}: its sweep has {swept}, the pairs are "
                                f"{', '.join(settings.pairs)} (grid.pairs=[] runs the full product)")
        combos += extra_combos(settings.extra_pairs.get(task, []), keys, sweeps, combos)
        cells += [[*common, *(f"{k}={v}" for k, v in combo.items()), *fixed] for combo in combos]
        recipe_keys = {k: v for k, v in keys.items() if k not in RECIPE_FIXED}
        recipe_fixed = [a for a in fixed if sweep_values(a)[0] not in RECIPE_FIXED]
        for recipe in base.grid.recipes.get(task, []):
            for combo in itertools.product(*recipe_keys.values()):
                cells.append([*common, f"+recipe={recipe}", "grid.budget_search=false",
                              *(f"{k}={v}" for k, v in zip(recipe_keys, combo)), *recipe_fixed])
    check_seeds(base, cells)
    return cells, [t for t in tasks if t not in present]


def trial_seed(tuning) -> int:
    """The seed every tuning trial of a suite runs (tuning: its grid.tuning)."""
    return TRIAL_SEED_BASE + int(tuning.seed)


def check_seeds(base: DictConfig, cells: list[list[str]]) -> None:
    """A tuned suite's cells never run its trials' seed (a cell's seed: its last `seed=`, else base's)."""
    if not base.grid.tuning.trials:
        return
    reserved = trial_seed(base.grid.tuning)
    for cell in cells:
        seeds = [values[-1] for key, values in map(sweep_values, cell) if key == "seed"]
        if int(seeds[-1] if seeds else base.seed) == reserved:
            raise UserError(f"seed {reserved} is the tuning trials' seed ({TRIAL_SEED_BASE} + "
                            f"grid.tuning.seed): a verdict must not read the seed its tuning selected on; "
                            f"sweep other seeds")


def extra_combos(extra: list[str], keys: dict[str, list[str]], replaced: dict[str, list[str]],
                 combos: list[dict]) -> list[dict]:
    """A task's grid.extra_pairs as cells: each pair crossed with the other swept keys (seeds), unless the
    command line replaced its optimizer or schedule by values without it; none already in `combos`."""
    rest, out = {k: v for k, v in keys.items() if k not in PAIR_KEYS}, []
    for pinned in (dict(zip(PAIR_KEYS, str(pair).split("/"))) for pair in extra):
        if not any(key in replaced and pinned[key] not in replaced[key] for key in PAIR_KEYS):
            out += [{**pinned, **dict(zip(rest, combo))} for combo in itertools.product(*rest.values())]
    return [c for i, c in enumerate(out) if c not in combos and c not in out[:i]]


def run_config(cfg: DictConfig, **changes) -> DictConfig:
    """The run's own config: the cell's without its `grid` section, plus `changes` (e.g. epochs=B)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(out):
        out.pop("grid", None)
        out.pop("hydra", None)
        for key, value in changes.items():
            out[key] = value
    base = OmegaConf.structured(RunConf)
    with open_dict(base):
        base.task = cfg.task  # keeps the task's own schema, so values type-check
    return OmegaConf.merge(base, out)


def is_budget_free(cfg: DictConfig) -> bool:
    return BUDGET_FREE[resolve_schedule(cfg)["kind"]]


def searches_budget(cfg: DictConfig) -> bool:
    """Whether the cell's epochs-to-target comes from a budget search (1cycle grid cells) rather than
    one run at the task's budget (budget-free schedules; recipe cells, run as published)."""
    return bool(cfg.grid.budget_search) and not is_budget_free(cfg)


def cell_name(cfg: DictConfig) -> str:
    """task/optimizer/schedule/seedN for a grid cell; task/+recipe/seedN for a published recipe's."""
    middle = f"+{cfg.recipe}" if cfg.get("recipe") else f"{cfg.optimizer.name}/{cfg.schedule.name}"
    return f"{cfg.task.name}/{middle}/seed{cfg.seed}"


def cell_path(cfg: DictConfig) -> Path:
    """The cell record: keyed by the cell's config with the budget left out (it is what the cell varies)."""
    config = OmegaConf.to_container(run_config(cfg), resolve=True)
    for key in ("epochs", "stop_at_target"):
        config.pop(key, None)
    middle = cfg.recipe if cfg.get("recipe") else f"{cfg.optimizer.name}__{cfg.schedule.name}"
    name = f"{cfg.task.name}__{middle}__s{cfg.seed}__{records.run_id(config)}"
    return Path(cfg.results_dir) / "grids" / cfg.suite / "cells" / f"{name}.json"
