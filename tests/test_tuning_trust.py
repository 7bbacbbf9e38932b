"""A study is trusted only with its runs (issue 21 §2): a finished trial whose run record is gone or
broken is run again — same parameters, same run id — and an outcome file whose study or runs are gone is
not read back; and a worker recovering killed trials leaves alone one told finished under its nose
(issue 21 §1)."""
import shutil

import optuna

from results import records
from runners.grid import tuning
from runners.spec import resolve_run
from runners.grid import plan
from runners.grid.cells import compose_many
from toy_task import toy_cell

COMPLETE = optuna.trial.TrialState.COMPLETE


def trial_dirs(results):
    return records.iter_run_dirs(results, "toy-tuning")


def mtimes(results):
    return {p.name: (p / records.STATUS_FILE).stat().st_mtime_ns for p in trial_dirs(results)}


def test_trials_without_their_runs_are_run_again_with_the_same_parameters(tmp_path, one_thread):
    cfg = toy_cell(str(tmp_path), trials=3)
    first, ran = tuning.tune(cfg), sorted(p.name for p in trial_dirs(tmp_path))
    shutil.rmtree(tmp_path / "runs")  # a fresh clone with another machine's database, or lost records
    again = tuning.tune(cfg)
    assert sorted(p.name for p in trial_dirs(tmp_path)) == ran and len(ran) == 3  # trained again, here
    assert (again["lr"], again["cost_epochs"]) == (first["lr"], first["cost_epochs"]) == (first["lr"], 12)
    assert again["runs"] == first["runs"] and sorted(first["runs"]) == ran
    trials = tuning.open_study(cfg).trials
    assert [t.state for t in trials] == [COMPLETE] * 6 and again["trials"] == 3  # runs counted, not trials
    assert [t.params for t in trials[3:]] == [t.params for t in trials[:3]]
    kept = {k: v for k, v in mtimes(tmp_path).items() if k != first["runs"][1]}
    (tmp_path / "runs/toy-tuning" / first["runs"][1] / records.STATUS_FILE).unlink()  # one record broken
    assert tuning.tune(cfg)["runs"] == first["runs"] and len(tuning.open_study(cfg).trials) == 7
    assert {k: v for k, v in mtimes(tmp_path).items() if k in kept} == kept  # only that one trained again
    assert tuning.tune(cfg)["cost_epochs"] == first["cost_epochs"] and len(tuning.open_study(cfg).trials) == 7


def test_an_outcome_is_trusted_only_while_its_study_and_runs_are_there(tmp_path, one_thread):
    cfg = toy_cell(str(tmp_path), trials=2)
    assert tuning.read_outcome(cfg) is None and plan.study_epochs(cfg)[0] == 8.0
    outcome = tuning.tune(cfg)
    assert tuning.read_outcome(cfg) == outcome and plan.study_epochs(cfg) == (0.0, 0.0)
    assert plan.plan_cell(cfg)["lr"] == outcome["lr"]
    shutil.rmtree(tmp_path / "runs/toy-tuning" / outcome["runs"][0])
    assert tuning.read_outcome(cfg) is None and plan.study_epochs(cfg)[0] == 8.0
    assert plan.plan_cell(cfg)["lr_origin"] == "tuning (to run)"
    assert tuning.tune(cfg) == outcome and tuning.read_outcome(cfg) == outcome  # the runner re-tuned
    (tmp_path / "tuning/toy.db").unlink()  # the study gone, its outcome file and runs left
    assert tuning.read_outcome(cfg) is None and not (tmp_path / "tuning/toy.db").exists()


def test_a_trial_told_finished_between_listing_and_its_lock_is_left_alone(tmp_path, monkeypatch):
    """The race of recover_stale, widened: once it has listed the RUNNING trials, the owner tells the trial
    COMPLETE and lets go of its lock before the check. Failing it then raised 'Cannot tell a COMPLETE
    trial' in the other worker."""
    cfg = toy_cell(str(tmp_path), trials=2)
    study = tuning.open_study(cfg)
    trial = study.ask(tuning.search_space(cfg))
    owner = tuning.TrialHold(cfg, trial.number).lock
    owner.acquire()
    real_init = tuning.TrialHold.__init__

    def finish_first(self, cfg, number):  # runs after the listing, before the lock is looked at
        real_init(self, cfg, number)
        if owner.is_locked:
            study.tell(trial, 0.5)
            owner.release()

    monkeypatch.setattr(tuning.TrialHold, "__init__", finish_first)
    tuning.recover_stale(study, cfg)
    assert [t.state for t in study.get_trials()] == [COMPLETE]  # not failed, nothing queued again
    assert not owner.is_locked


def test_the_trust_check_names_the_run_a_trial_makes(tmp_path):
    """The ledger's run ids (resolved once per study) are run_path's, else every trial would be rerun."""
    cells = compose_many([["suite=modern_mini", f"task={t}", f"optimizer={o}", f"schedule={s}",
                           f"results_dir={tmp_path}"] for t, o, s in [
        ("digits_resnet", "adamw", "one_cycle"), ("digits_finetune", "sgd", "reference"),
        ("synth_awd_lstm", "sf_adamw", "warmup")]])
    for cfg in [*cells, toy_cell(str(tmp_path))]:
        for params in ({"lr": 0.003, "weight_decay": 0.01}, {"lr": 1.5}):
            assert tuning.trial_run_ids(cfg)(params) == resolve_run(tuning.trial_config(cfg, params, 7)).path.name
