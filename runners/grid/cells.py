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
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from results import records
from results.errors import UserError
from results.layout import Layout
from suites import TASK_SCHEMAS

from ..config import RunConf, register_configs
from ..overrides import hydra_error, resolved
from ..schedules import BUDGET_FREE
from ..spec import resolve_schedule
from .settings import PAIR_KEYS, RECIPE_FIXED, TRIAL_SEED_BASE, GridConf, GridSettings, sweep_values

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def register_grid_configs() -> None:
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
    return Layout.at(cfg.results_dir).cells(cfg.suite) / f"{name}.json"
