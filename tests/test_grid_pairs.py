"""grid.pairs: explicit (optimizer, schedule) pairs restrict a suite's product (the modern suites), a bad
pair is refused by name, and a command-line optimizer= narrows the sweep, the pairs keeping what is left.
Override lists only (runners/grid/cells.py), plus the modern_mini composed and priced with placeholder
optimizers and schedules in a copy of conf/ (the real ones are other work)."""
from __future__ import annotations

import re
import shutil

import pytest
from omegaconf import OmegaConf

from results.errors import UserError
from runners.grid import cells as grid_cells
from runners.grid.cells import cell_overrides

PAIRS = "grid.pairs=[adamw/one_cycle,sgd/reference]"
ONE_TASK = ["task=digits_resnet", "seed=0"]
MODERN_PAIRS = {("adamw", "one_cycle"), ("sf_adamw", "warmup"), ("lion", "one_cycle"), ("muon", "one_cycle"),
                ("adamw", "cosine"), ("adamw", "wsd")}


def pairs_of(overrides: list[list[str]]) -> list[tuple[str, str]]:
    def value(cell, key):
        return next(a.split("=", 1)[1] for a in cell if a.startswith(f"{key}="))

    return sorted((value(c, "optimizer"), value(c, "schedule")) for c in overrides)


def test_pairs_restrict_the_product():
    full, _ = cell_overrides("mini", ONE_TASK)
    assert len(full) == 8  # 4 optimizers x 2 schedules
    kept, _ = cell_overrides("mini", [*ONE_TASK, PAIRS])
    assert pairs_of(kept) == [("adamw", "one_cycle"), ("sgd", "reference")]
    emptied, _ = cell_overrides("mini", [*ONE_TASK, "grid.pairs=[]"])
    assert pairs_of(emptied) == pairs_of(full)  # empty: the full product


def test_seeds_and_tasks_still_cross_the_pairs():
    kept, _ = cell_overrides("mini", ["task=digits_resnet,digits_wrn", "seed=range(2)", PAIRS])
    assert len(kept) == 2 * 2 * 2


@pytest.mark.parametrize("pairs,message", [
    ("[lion/one_cycle]", "grid.pairs: 'lion/one_cycle' names optimizer 'lion', which grid.sweep.optimizer does "
                         "not include (sgd, adam_l2, adamw, amsgrad)"),
    ("[adamw/cosine]", "names schedule 'cosine', which grid.sweep.schedule does not include"),
    ("[adamw]", "grid.pairs: 'adamw' is not 'optimizer/schedule'"),
])
def test_a_pair_outside_the_sweep_is_refused_by_name(pairs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        cell_overrides("mini", [*ONE_TASK, f"grid.pairs={pairs}"])


def test_a_command_line_optimizer_narrows_the_sweep_and_the_pairs_keep_what_is_left():
    """optimizer=adamw replaces the swept optimizers: the pairs are validated against the suite's own
    sweep, then keep their adamw pairs; an optimizer in no pair leaves nothing to run, and says so."""
    kept, _ = cell_overrides("mini", [*ONE_TASK, PAIRS, "optimizer=adamw"])
    assert pairs_of(kept) == [("adamw", "one_cycle")]
    with pytest.raises(UserError, match=r"grid.pairs keeps no cell of digits_resnet: .*optimizer=amsgrad.*"
                                        r"grid.pairs=\[\] runs the full product"):
        cell_overrides("mini", [*ONE_TASK, PAIRS, "optimizer=amsgrad"])


@pytest.mark.parametrize("suite,tasks,seeds", [("modern", 4, 3), ("modern_mini", 3, 3)])
def test_the_modern_suites_declare_the_six_pairs(suite, tasks, seeds):
    overrides, absent = cell_overrides(suite, [])
    assert absent == [] and len(overrides) == tasks * len(MODERN_PAIRS) * seeds
    assert set(pairs_of(overrides)) == MODERN_PAIRS


def placeholder_conf(tmp_path):
    """conf/ plus stand-ins for the optimizers and schedules others are adding: AdamW copies, a constant
    (budget-free) warmup, 1cycle-shaped cosine and wsd."""
    conf = tmp_path / "conf"
    shutil.copytree(grid_cells.CONF_DIR, conf)
    adamw = (conf / "optimizer/adamw.yaml").read_text()
    for name in ("sf_adamw", "lion", "muon"):
        (conf / f"optimizer/{name}.yaml").write_text(adamw.replace("name: adamw", f"name: {name}"))
    for name, like in (("warmup", "constant"), ("cosine", "one_cycle"), ("wsd", "one_cycle")):
        (conf / f"schedule/{name}.yaml").write_text((conf / f"schedule/{like}.yaml").read_text()
                                                     + f"name: {name}\n")
    return conf


def test_modern_mini_composes_and_plans_its_studies_with_placeholders(tmp_path, monkeypatch):
    """The plan and the tuning studies need nothing new: one study per (task, pair), shared by its seeds
    (one seed here, to keep the test short)."""
    from runners.grid.plan import format_plan, studies

    monkeypatch.setattr(grid_cells, "CONF_DIR", placeholder_conf(tmp_path))
    overrides, _ = cell_overrides("modern_mini", ["seed=0", f"results_dir={tmp_path / 'results'}"])
    cells = grid_cells.compose_many(overrides)
    assert {(c.optimizer.name, c.schedule.name) for c in cells} == MODERN_PAIRS
    assert all(not OmegaConf.to_object(c.grid).problems() for c in cells)
    assert len(studies(cells)) == 3 * len(MODERN_PAIRS)
    assert [grid_cells.is_budget_free(c) for c in cells].count(True) == 3  # sf_adamw + warmup, per task
    plan = format_plan(cells)
    assert "tuning: 18 studies x 3 trials" in plan[-1] and "without pruning" in plan[-1]
