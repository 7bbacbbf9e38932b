"""The tuning protocol favours no schedule (issue 20 §3): every trial, budget-free or not, runs the same
budget to its end and is scored by the same quantity; trials run a seed no verdict reads; and only
studies whose mid-run metric predicts their end (budget-free schedules) are pruned."""
import math

import pytest
from omegaconf import OmegaConf

from results.errors import UserError
from results.tuning import recorded_score, trial_score
from runners.config import OneCycleConf
from runners.grid import plan
from runners.grid.cells import cell_overrides
from runners.grid.settings import TuningSettings
from runners.grid.tuning import open_study, trial_budget, trial_config, trial_run_ids, tune
from toy_task import toy_cell

TARGET = {"metric": "val_acc", "value": 0.9, "mode": "max"}


def one_cycle_cell(results_dir, trials=4, **tuning):
    cfg = toy_cell(str(results_dir), trials=trials)
    cfg.schedule = OmegaConf.structured(OneCycleConf(moms=[0.0, 0.0, 0.0]))  # the toy's SGD has no momentum
    cfg.grid.tuning.merge_with(tuning)
    return cfg


def test_budget_free_and_decaying_trials_are_scored_by_the_same_quantity():
    reached = {"status": "completed", "budget_free": True, "max_epochs": 8, "epochs_to_target": 3,
               "target": TARGET, "final": {"val_acc": 0.95}}
    decaying = {**reached, "budget_free": False, "epochs_to_target": None}
    assert trial_score(reached) == trial_score(decaying) == -0.95  # the final validation metric, both
    missed = {**reached, "epochs_to_target": None, "final": {"val_acc": 0.5}}
    assert trial_score(reached) < trial_score(missed) == -0.5


def test_a_diverged_trial_scores_worst_also_when_read_back_from_its_record():
    assert trial_score({"status": "diverged", "target": TARGET, "final": {"val_acc": 0.99}}) == math.inf
    assert trial_score({"status": "completed", "target": TARGET, "final": {"val_acc": math.nan}}) == math.inf
    assert recorded_score({"status": "diverged", "score": None}) == math.inf  # JSON's null
    assert recorded_score({"status": "completed", "score": -0.5}) == -0.5
    assert recorded_score({"status": "pruned", "score": None}) is None


def test_every_trial_runs_the_tuning_budget_to_its_end(tmp_path):
    free, decaying = toy_cell(str(tmp_path)), one_cycle_cell(tmp_path)
    assert trial_budget(free) == trial_budget(decaying) == 4  # budget_fraction 0.5 of the toy's 8 epochs
    for cfg in (free, decaying):
        run = trial_config(cfg, {"lr": 1.0}, 0)
        assert run.epochs == 4 and run.stop_at_target is False
    free.grid.tuning.budget = {"toy": 6}  # the claim's own epochs, for every schedule
    assert trial_config(free, {"lr": 1.0}, 0).epochs == 6


def test_trials_run_a_seed_that_no_cell_runs(tmp_path):
    cells = [toy_cell(str(tmp_path)) for _ in range(3)]
    for seed, cfg in enumerate(cells):
        cfg.seed = seed
    assert {trial_config(c, {"lr": 1.0}, 0).seed for c in cells} == {1000}
    assert len({trial_run_ids(c)({"lr": 1.0}) for c in cells}) == 1  # the seeds of a cell share its trials
    cells[0].grid.tuning.seed = 2
    assert trial_config(cells[0], {"lr": 1.0}, 0).seed == 1002
    assert TuningSettings(seed=-1).problems() == ["grid.tuning.seed must be >= 0, got -1"]


def test_the_grid_refuses_a_sweep_at_the_trials_seed(capsys):
    from runners.grid.__main__ import main

    with pytest.raises(UserError, match="seed 1000 is the tuning trials' seed"):
        cell_overrides("mini", ["task=digits_resnet", "seed=0,1000"])
    with pytest.raises(UserError, match="seed 1003"):
        cell_overrides("mini", ["task=digits_resnet", "seed=1003", "grid.tuning.seed=3"])
    assert cell_overrides("mini", ["task=digits_resnet", "seed=1000", "grid.tuning.trials=0"])[0]  # untuned
    assert cell_overrides("mini", ["task=digits_resnet", "seed=999,1001"])[0]
    assert main(["suite=mini", "task=digits_resnet", "seed=range(999,1002)", "plan=true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: seed 1000 is the tuning trials' seed") and err.count("\n") == 1


def test_only_budget_free_studies_are_pruned(tmp_path):
    free = toy_cell(str(tmp_path), trials=4)
    free.grid.tuning.merge_with({"pruning": True, "min_resource": 1, "reduction_factor": 2})
    decaying = one_cycle_cell(tmp_path, pruning=True, min_resource=1, reduction_factor=2)
    assert type(open_study(free).pruner).__name__ == "SuccessiveHalvingPruner"
    assert type(open_study(decaying).pruner).__name__ == "NopPruner"
    plain, halved = plan.study_epochs(decaying)  # the plan prices it unpruned
    assert plain == halved == 4 * 4 and plan.study_epochs(free)[1] < plan.study_epochs(free)[0]


def test_a_decaying_study_runs_every_trial_to_its_end(tmp_path, one_thread):
    outcome = tune(one_cycle_cell(tmp_path, pruning=True, min_resource=1, reduction_factor=2))
    assert outcome["pruned"] == 0 and outcome["pruning"] is False
    assert outcome["cost_epochs"] == 4 * outcome["budget"]  # every trial ran to the end of its cycle
