"""A GPU night rehearsed on any machine (`python -m runners.grid suite=NAME rehearsal=true`, `make
rehearse`): every cell of the suite — grid cells, published recipes, tuning studies — at its task's full
model size, on the fabricated data `python -m suites.data fake` writes in the real formats, each epoch
capped at a few batches and every budget at a few epochs. It goes through the real grid, tuner, budget
search, WSD branches, NT-ASGD switch, training stages, checkpoints and resumes; `python -m report` then
builds its page, marked as no measurement. As PyTorch Lightning's `fast_dev_run`, for a whole suite.

What a rehearsal changes in each cell, and nothing else:
  suite        `<suite>-rehearsal` (records.is_rehearsal): its own runs, studies and page, never pooled
  task         the task's `fabricated(root)` overrides (where the fabricated files are); the training
               batch capped at `batch_size` (the model keeps its size: what a step costs per item is
               measured, report/rehearsal.py scales it to the full batch and epoch). Evaluation keeps
               its own batch sizes: the fabricated held-out sets are small, and bigger batches are faster
  epochs       the task's budget, a recipe's and every tuning budget capped at `epochs`
  limit_batches  `batches` training batches an epoch (RunConf.limit_batches; the run counts one step's
               FLOPs too: runners/profile.py)
  grid.tuning  `trials` trials a study, its budgets capped at `epochs`, pruning from epoch 1
  NT-ASGD      nonmono=1, so the switch to averaging can happen within the capped budget
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from results import records
from results.errors import UserError
from results.layout import Layout
from suites import TASK_SCHEMAS
from suites.base import fabricated_at

from .data import suite_needs
from .plan import plan_cell, studies, study_epochs
from .settings import RehearsalSettings

INFO_FILE = "rehearsal.json"  # what the report needs to predict full-size epoch times


def data_root(settings: RehearsalSettings, results_dir: str) -> Path:
    return Path(settings.data_root or Layout.at(results_dir).rehearsal_data()).expanduser().resolve()


def rehearse(cfg: DictConfig, settings: RehearsalSettings, root: Path) -> DictConfig:
    """The cell `cfg` as its rehearsal runs it (module docstring)."""
    out = copy.deepcopy(cfg)  # typed still: the task's schema checks the overrides
    task = OmegaConf.to_object(cfg.task)
    with open_dict(out):
        out.suite = f"{cfg.suite}{records.REHEARSAL_SUFFIX}"
        out.task = OmegaConf.merge(out.task, task.fabricated(root))
        if "batch_size" in out.task:
            out.task.batch_size = min(int(out.task.batch_size), settings.batch_size)
        out.task.epochs = min(int(out.task.epochs), settings.epochs)
        out.epochs = min(int(out.epochs), settings.epochs)
        out.limit_batches = settings.batches
        if out.optimizer.name == "ntasgd":
            out.optimizer.kwargs.nonmono = 1
        tuning = out.grid.tuning  # a job reads its cell's grid section (runners/grid/job.py load_cell)
        tuning.trials = min(int(tuning.trials), settings.trials)
        tuning.budget = {task: min(int(epochs), settings.epochs) for task, epochs in tuning.budget.items()}
        tuning.min_resource = 1
        # The plan's GPU epoch times say nothing of a capped epoch: the launch's ETA measures its own
        # (rehearsal.json keeps the suite's, for the report).
        out.grid.epoch_seconds = {}
    return out




def rehearse_cells(cells: list[DictConfig], suite: str) -> tuple[list[DictConfig], str]:
    """Every cell as rehearsed, and the rehearsal's suite name; refused (UserError) while the fabricated
    data is not all there. Writes nothing."""
    settings: RehearsalSettings = OmegaConf.to_object(cells[0].grid.rehearsal)
    if settings.problems():
        raise UserError(settings.problems()[0])
    root = data_root(settings, cells[0].results_dir)
    out = [rehearse(cfg, settings, root) for cfg in cells]
    check_fabricated(out, suite, root)
    return out, str(out[0].suite)


def check_fabricated(cells: list[DictConfig], suite: str, root: Path) -> None:
    """Every need of every rehearsed task is fabricated data: present, and marked as such."""
    absent = [need for need in suite_needs(cells) if not (need.path.exists() and fabricated_at(need.path))]
    if absent:
        raise UserError(f"no fabricated {absent[0].item} at {absent[0].path}: write the rehearsal's data with "
                        f"`python -m suites.data fake suite={suite} data_root={root}` (make rehearse does)")


def planned_epochs(cells: list[DictConfig]) -> dict[str, float]:
    """Per task, the epochs `plan=true` prices for these (declared, full-size) cells: their searches and
    seeds, plus each pending study's trials (pruned where the suite prunes), as runners/grid/plan.py
    walks them — so the report can price the plan at the epoch times the rehearsal predicts."""
    out: dict[str, float] = {}
    for cfg in cells:
        out[str(cfg.task.name)] = out.get(str(cfg.task.name), 0.0) + plan_cell(cfg)["cost"]
    for index in studies(cells).values():
        cfg = cells[index]
        out[str(cfg.task.name)] += study_epochs(cfg)[1 if cfg.grid.tuning.pruning else 0]
    return out


def write_info(cells: list[DictConfig], rehearsal_suite: str) -> Path:
    """`grids/<suite>-rehearsal/rehearsal.json`, from the cells as the suite declares them: the caps, and
    per task what the report needs to scale a rehearsal's measured step to a full epoch — the full and
    the rehearsed batch size, the published epoch's items, the precision, and the epoch time the plan
    assumes (grid.epoch_seconds)."""
    settings: RehearsalSettings = OmegaConf.to_object(cells[0].grid.rehearsal)
    tasks, epochs = {}, planned_epochs(cells)
    for cfg in cells:
        name, full = str(cfg.task.name), cfg.task.get("batch_size")
        tasks.setdefault(name, {
            "full_batch_size": full, "batch_size": None if full is None else min(full, settings.batch_size),
            "precision": cfg.precision, "assumed_epoch_s": cfg.grid.epoch_seconds.get(name),
            "planned_epochs": round(epochs.get(name, 0.0)),
            "published_items": dict(getattr(TASK_SCHEMAS.get(name), "published_items", None) or {})})
    info = {"format": 1, "suite": str(cells[0].suite), "rehearsal_suite": rehearsal_suite,
            "data_root": str(data_root(settings, cells[0].results_dir)),
            "caps": {k: getattr(settings, k) for k in ("epochs", "batches", "batch_size", "trials")},
            "tasks": tasks}
    path = Layout.at(cells[0].results_dir).grid(rehearsal_suite) / INFO_FILE
    records.write_text_atomic(path, json.dumps(info, indent=1, sort_keys=True))
    return path
