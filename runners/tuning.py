"""Tuning: every cell of a suite gets the same budget of trials over (LR, weight decay), chosen on a
validation split, never on the test set — so that no optimizer is judged at a mistuned setting (Choi et
al. 2019; Schmidt et al. 2021; AlgoPerf's external-tuning ruleset).

One Optuna study per (task, optimizer, schedule), in the suite's storage (grid.tuning.storage), shared by
every grid job of that cell group — its seeds, on any worker. Trials are quasi-random (scrambled Sobol,
seeded: AlgoPerf's external-tuning baseline) over the task's space: log-uniform LR and WD within a
factor of the sourced values (task.search). A trial is an ordinary run (runners/run.py execute) under the
suite `<suite>-tuning`, on task.split=validation toward the validation target, keyed by its config: a
killed trial resumes, a finished one is never trained again, whatever trial number asks for it. Its
score is results/tuning.py's. With grid.tuning.pruning, successive halving compares the trials of a
study (same schedule, same budget) at the same epoch and stops the worse ones.

Who runs what: under the study's file lock a worker counts the finished and running trials, and asks
for a new one only while fewer than grid.tuning.trials exist. Each running trial is held by a lock of
its own; a RUNNING trial whose lock is free was killed: it is failed and its parameters queued again,
so the next ask resumes its run. When none is left to ask, a worker waits for the running ones, then
every worker reads the same best trial.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import filelock
import optuna
from omegaconf import DictConfig, OmegaConf

from results import records
from results.errors import UserError
from results.targets import Target
from results.tuning import trial_suite

from .config import configured_lr, configured_wd, run_path
from .grid.cells import is_budget_free, run_config

TrialState = optuna.trial.TrialState
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT_S = 2.0  # between looks at a study whose last trials other workers are running


def study_name(cfg: DictConfig) -> str:
    return f"{cfg.task.name}/{cfg.optimizer.name}/{cfg.schedule.name}"


def tuning_dir(cfg: DictConfig) -> Path:
    return Path(cfg.results_dir) / "tuning"


def storage(cfg: DictConfig):
    """The suite's storage: SQLite on one machine; Optuna's file journal where SQLite's locking is not to
    be trusted (NFS, SLURM); or a database URL."""
    setting, base = cfg.grid.tuning.storage, tuning_dir(cfg)
    base.mkdir(parents=True, exist_ok=True)
    if setting is None:  # wait for a busy database rather than fail (several workers write one file)
        return optuna.storages.RDBStorage(f"sqlite:///{(base / f'{cfg.suite}.db').resolve()}",
                                          engine_kwargs={"connect_args": {"timeout": 120}})
    if setting == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(base / f"{cfg.suite}.journal")))
    return str(setting)


def open_study(cfg: DictConfig) -> optuna.Study:
    settings = cfg.grid.tuning
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=int(settings.seed),
                                         warn_independent_sampling=False)
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=int(settings.min_resource),
                                                     reduction_factor=int(settings.reduction_factor))
              if settings.pruning else optuna.pruners.NopPruner())
    # The first workers of a suite would race to create the storage's tables: one at a time.
    lock = tuning_dir(cfg) / "locks" / f"{cfg.suite}.storage.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(lock):
        return optuna.create_study(study_name=study_name(cfg), storage=storage(cfg), sampler=sampler,
                                   pruner=pruner, direction="minimize", load_if_exists=True)


def search_space(cfg: DictConfig) -> dict:
    """Log-uniform LR and WD within task.search's factors of the sourced values; a sourced WD of 0 is
    not tuned (the optimizer's reference uses none)."""
    from optuna.distributions import FloatDistribution

    lr0 = configured_lr(cfg)
    if lr0 is None:
        raise UserError(f"tuning {study_name(cfg)} needs a sourced LR: add task.lr[{cfg.optimizer.name}]")
    wd0, factors = configured_wd(cfg)[0], cfg.task.search
    space = {"lr": FloatDistribution(lr0[0] / factors.lr_factor, lr0[0] * factors.lr_factor, log=True)}
    if wd0 > 0:
        space["weight_decay"] = FloatDistribution(wd0 / factors.wd_factor, wd0 * factors.wd_factor, log=True)
    return space


def trial_budget(cfg: DictConfig) -> int:
    """Budget-free schedules: the task's maximum (the trial stops at the target). 1cycle: the claim's own
    epochs (grid.tuning.budget) or a stated fraction of the maximum, at least one epoch per stage."""
    settings, max_epochs = cfg.grid.tuning, int(cfg.task.epochs)
    if is_budget_free(cfg):
        return max_epochs
    chosen = settings.budget.get(cfg.task.name) or round(settings.budget_fraction * max_epochs)
    return max(int(chosen), len(cfg.task.stages), 1)


def trial_config(cfg: DictConfig, params: dict, number: int) -> DictConfig:
    """A trial's run: the cell's config on the validation split at the trial's LR and WD and budget."""
    target = Target.from_mapping(cfg.task.target).on_validation()
    run = run_config(cfg, epochs=trial_budget(cfg), stop_at_target=is_budget_free(cfg),
                     seed=int(cfg.grid.tuning.seed), suite=trial_suite(cfg.suite), tuning_trial=number)
    OmegaConf.update(run, "task.split", "validation")
    OmegaConf.update(run, "task.target.metric", target.metric)
    OmegaConf.update(run, "optimizer.lr", float(params["lr"]))
    OmegaConf.update(run, "optimizer.weight_decay", float(params.get("weight_decay", 0.0)))
    if not sys.stderr.isatty():
        run.progress = False
    return run


class TrialHold:
    """The lock a worker holds while it runs a trial: free while RUNNING means its worker died."""

    def __init__(self, cfg: DictConfig, number: int):
        safe = study_name(cfg).replace("/", "__")
        path = tuning_dir(cfg) / "locks" / cfg.suite / f"{safe}__{number}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = filelock.FileLock(path)

    def is_free(self) -> bool:
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        self.lock.release()
        return True


def recover_stale(study: optuna.Study, cfg: DictConfig) -> None:
    """RUNNING trials nobody holds were killed: fail them, and queue their parameters again so that
    the next ask resumes the same run (its config, hence its run id, is the same)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if TrialHold(cfg, trial.number).is_free():
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params)


def run_trial(cfg: DictConfig, study: optuna.Study, trial: optuna.Trial) -> None:
    from .run import execute  # torch loads only when a trial really trains

    run_cfg = trial_config(cfg, trial.params, trial.number)
    trial.set_user_attr("run_id", run_path(run_cfg).name)
    target = Target.from_mapping(run_cfg.task.target)

    def report(row: dict) -> bool:  # the pruner's view: the validation metric, lower better
        from results.tuning import intermediate_value

        value = intermediate_value(row, target)
        if value is not None:
            trial.report(value, int(row["epoch"]))
        return trial.should_prune()

    try:
        status = execute(run_cfg, after_epoch=report if cfg.grid.tuning.pruning else None)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)  # a rerun retries this point, resuming its run
        raise
    if status["status"] == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, status.get("score"))


def tune(cfg: DictConfig) -> dict:
    """Run (or join, or read) the cell group's study until it has grid.tuning.trials counted trials;
    returns the outcome (also written to grids/<suite>/tuning/)."""
    study, space, wanted = open_study(cfg), search_space(cfg), int(cfg.grid.tuning.trials)
    lock_path = tuning_dir(cfg) / "locks" / cfg.suite / f"{study_name(cfg).replace('/', '__')}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path)  # counting the trials and asking for one: one worker at a time
    while True:
        with lock:
            recover_stale(study, cfg)
            trials = study.get_trials(deepcopy=False)
            counted = sum(t.state in COUNTED for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            trial = study.ask(space) if counted + running < wanted else None
            hold = TrialHold(cfg, trial.number) if trial else None
            if hold:
                hold.lock.acquire()
        if trial is None:
            if running == 0:
                return write_outcome(cfg, study, space)
            time.sleep(WAIT_S)
            continue
        try:
            run_trial(cfg, study, trial)
        finally:
            hold.lock.release()


def write_outcome(cfg: DictConfig, study: optuna.Study, space: dict) -> dict:
    """The cell group's tuning outcome: the best trial's values, counts and cost in epochs."""
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        raise UserError(f"tuning {study_name(cfg)}: no trial completed (all {len(trials)} pruned)")
    best = min(complete, key=lambda t: (t.value, t.number))
    cost = 0
    for t in trials:
        path = records.run_dir(cfg.results_dir, trial_suite(cfg.suite), t.user_attrs.get("run_id", ""))
        cost += int((records.read_status(path / records.STATUS_FILE) or {}).get("epochs_done") or 0)
    settings = cfg.grid.tuning
    outcome = {"study": study_name(cfg), "task": cfg.task.name, "optimizer": cfg.optimizer.name,
               "schedule": cfg.schedule.name, "lr": best.params["lr"],
               "weight_decay": best.params.get("weight_decay", 0.0), "best_trial": best.number,
               "best_score": best.value, "trials": len(trials),
               "pruned": sum(t.state == TrialState.PRUNED for t in trials), "cost_epochs": cost,
               "space": {k: [d.low, d.high] for k, d in space.items()}, "budget": trial_budget(cfg),
               "split": "validation", "storage": str(settings.storage or "sqlite"),
               "sampler": f"QMC sobol scrambled seed {settings.seed}", "pruning": bool(settings.pruning)}
    records.write_json_atomic(outcome_path(cfg), outcome)
    return outcome


def outcome_path(cfg: DictConfig) -> Path:
    return (Path(cfg.results_dir) / "grids" / cfg.suite / "tuning"
            / f"{cfg.task.name}__{cfg.optimizer.name}__{cfg.schedule.name}.json")


def tuned(cfg: DictConfig, outcome: dict) -> DictConfig:
    """The cell's config at the tuned values (its seeds and budget search run with these)."""
    return OmegaConf.merge(cfg, {"optimizer": {"lr": outcome["lr"], "weight_decay": outcome["weight_decay"]}})
