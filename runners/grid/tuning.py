"""Tuning: every cell of a suite gets the same budget of trials over (LR, weight decay), chosen on a
validation split, never on the test set — so that no optimizer is judged at a mistuned setting (Choi et
al. 2019; Schmidt et al. 2021; AlgoPerf's external-tuning ruleset).

One Optuna study per (task, optimizer, schedule), in the suite's storage (grid.tuning.storage), shared by
every grid job of that cell group — its seeds, on any worker. Trials are quasi-random (scrambled Sobol,
seeded: AlgoPerf's external-tuning baseline) over the task's space: log-uniform LR and WD within a
factor of the sourced values (task.search). A trial is an ordinary run (runners/run.py execute) under the
suite `<suite>-tuning`, on task.split=validation, keyed by its config: a killed trial resumes, a finished
one is never trained again, whatever trial number asks for it.

What favours no schedule: every trial runs the same budget (trial_budget: the claim's epochs) to its
end and scores its final validation metric (results/tuning.py), at seed TRIAL_SEED_BASE +
grid.tuning.seed, which the grid refuses as a cell's seed (on the language models the validation split
is the verdict's: a cell must not replay the trial chosen on it).

Pruning (grid.tuning.pruning): successive halving compares the trials of one study at the same epoch —
one schedule, one budget, one seed, so at a rung they stand at the same point of the same LR shape and
differ only in LR and WD; trials of different studies never meet. That does not make a mid-run metric
predict the end: under 1cycle, cosine or WSD a high LR looks worst before its decay and may end best.
So only budget-free schedules are pruned (a step schedule's milestones inside the budget are the
exception to watch); the others run every trial to its end — asymmetric in cost, never in score.

A study is trusted only with its runs (results/tuning.py vouched_runs): a finished trial whose run is
missing, broken or another protocol's (another machine's database, lost records) is run again with its
parameters, hence its run id; a saved outcome is read back only while its runs vouch for it.

Who runs what: under the study's file lock a worker counts the runs and the running trials, and asks for
a new one only while fewer than grid.tuning.trials exist. Each running trial is held by a lock of its
own; a RUNNING trial whose lock is free was killed: it is failed and its parameters queued again, so the
next ask resumes its run. When none is left to ask, a worker waits for the running ones, then every
worker reads the same best trial.
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import filelock
import optuna
from omegaconf import DictConfig, OmegaConf

from results import records
from results.errors import UserError
from results.layout import Layout
from results.targets import Target
from results.tuning import TuningOutcome, intermediate_value, recorded_score, trial_suite, vouched_runs

from ..run import execute
from ..spec import configured_lr, configured_wd, resolve_run
from .cells import is_budget_free, run_config, trial_seed

TrialState = optuna.trial.TrialState
WAIT_S = 2.0  # between looks at a study whose last trials other workers are running
VOUCHED = ("lr", "weight_decay", "runs", "trials", "budget")  # a saved outcome must agree on these


def study_name(cfg: DictConfig) -> str:
    return f"{cfg.task.name}/{cfg.optimizer.name}/{cfg.schedule.name}"


def tuning_dir(cfg: DictConfig) -> Path:
    return Layout.at(cfg.results_dir).tuning()


def storage_file(cfg: DictConfig) -> Path | None:
    """The file a SQLite or journal storage lives in; None for a database URL."""
    setting = cfg.grid.tuning.storage
    if setting is None or setting == "journal":
        return tuning_dir(cfg) / f"{cfg.suite}.{'db' if setting is None else 'journal'}"
    return None


def storage(cfg: DictConfig):
    """The suite's storage: SQLite on one machine; Optuna's file journal where SQLite's locking is not to
    be trusted (NFS, SLURM); or a database URL."""
    setting, path = cfg.grid.tuning.storage, storage_file(cfg)
    tuning_dir(cfg).mkdir(parents=True, exist_ok=True)
    if setting is None:  # wait for a busy database rather than fail (several workers write one file)
        return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}",
                                          engine_kwargs={"connect_args": {"timeout": 120}})
    if setting == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    return str(setting)


def prunes(cfg: DictConfig) -> bool:
    """Whether the study's trials are pruned: asked for, and the schedule budget-free (module docstring)."""
    return bool(cfg.grid.tuning.pruning) and is_budget_free(cfg)


def open_study(cfg: DictConfig) -> optuna.Study:
    settings = cfg.grid.tuning
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=int(settings.seed),
                                         warn_independent_sampling=False)
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=int(settings.min_resource),
                                                     reduction_factor=int(settings.reduction_factor))
              if prunes(cfg) else optuna.pruners.NopPruner())
    # The first workers of a suite would race to create the storage's tables: one at a time.
    lock = Layout.at(cfg.results_dir).tuning_locks() / f"{cfg.suite}.storage.lock"
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
    wd0, factors = configured_wd(cfg).value, cfg.task.search
    space = {"lr": FloatDistribution(lr0.value / factors.lr_factor, lr0.value * factors.lr_factor, log=True)}
    if wd0 > 0:
        space["weight_decay"] = FloatDistribution(wd0 / factors.wd_factor, wd0 * factors.wd_factor, log=True)
    return space


def trial_budget(cfg: DictConfig) -> int:
    """Every trial's epochs, whatever its schedule: the claim's own (grid.tuning.budget) or a stated
    fraction of the task's maximum, at least one epoch per stage."""
    settings, max_epochs = cfg.grid.tuning, int(cfg.task.epochs)
    chosen = settings.budget.get(cfg.task.name) or round(settings.budget_fraction * max_epochs)
    return max(int(chosen), len(cfg.task.stages), 1)


def trial_config(cfg: DictConfig, params: dict, number: int) -> DictConfig:
    """A trial's run: the cell's config on the validation split at the trial's LR and WD, run for the
    tuning budget (never stopped at the target) at the tuning seed."""
    target = Target.from_mapping(cfg.task.target).on_validation()
    run = run_config(cfg, epochs=trial_budget(cfg), stop_at_target=False, seed=trial_seed(cfg.grid.tuning),
                     suite=trial_suite(cfg.suite), tuning_trial=number)
    OmegaConf.update(run, "task.split", "validation")
    OmegaConf.update(run, "task.target.metric", target.metric)
    OmegaConf.update(run, "optimizer.lr", float(params["lr"]))
    OmegaConf.update(run, "optimizer.weight_decay", float(params.get("weight_decay", 0.0)))
    if not sys.stderr.isatty():
        run.progress = False
    return run


def trial_run_ids(cfg: DictConfig):
    """params -> the id of the run a trial at them makes, as run_path names it (the trial's number is
    output-only). The config is resolved once: trials differ only in their LR and WD."""
    base = resolve_run(trial_config(cfg, {"lr": 1.0}, 0)).config

    def run_id(params: dict) -> str:
        chosen = {"lr": float(params["lr"]), "weight_decay": float(params.get("weight_decay", 0.0))}
        return records.run_id({**base, "optimizer": {**base["optimizer"], **chosen}})

    return run_id


class TrialHold:
    """The lock a worker holds while it runs a trial: free while RUNNING means its worker died."""

    def __init__(self, cfg: DictConfig, number: int):
        safe = study_name(cfg).replace("/", "__")
        path = Layout.at(cfg.results_dir).tuning_locks() / cfg.suite / f"{safe}__{number}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = filelock.FileLock(path)

    def take(self) -> bool:
        """Take the lock if it is free, without waiting."""
        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True


def recover_stale(study: optuna.Study, cfg: DictConfig) -> None:
    """RUNNING trials nobody holds were killed: fail them, and queue their parameters again so that
    the next ask resumes the same run (its config, hence its run id, is the same)."""
    for listed in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        hold = TrialHold(cfg, listed.number)
        if not hold.take():
            continue
        try:  # read again under its lock: its worker may have told it and let go since the listing
            running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            if listed.number in running:
                study.tell(listed.number, state=TrialState.FAIL)
                study.enqueue_trial(listed.params)
        finally:
            hold.lock.release()


def vouched(cfg: DictConfig, trials: list) -> tuple[dict, list[dict]]:
    """(run id -> (trial, status) of the runs that vouch for the study, parameters to run again):
    results/tuning.py vouched_runs, with this protocol's run ids."""
    return vouched_runs(trials, trial_run_ids(cfg), cfg.results_dir, cfg.suite)


def run_trial(cfg: DictConfig, study: optuna.Study, trial: optuna.Trial) -> None:
    spec = resolve_run(trial_config(cfg, trial.params, trial.number))
    trial.set_user_attr("run_id", spec.run_id)
    target = spec.run.task.target

    def report(row: dict) -> bool:  # the pruner's view: the validation metric, lower better
        value = intermediate_value(row, target)
        if value is not None:
            trial.report(value, int(row["epoch"]))
        return trial.should_prune()

    try:
        status = execute(spec, after_epoch=report if prunes(cfg) else None)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params)  # a rerun retries this point, resuming its run
        raise
    if status["status"] == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:  # a run found finished is read from disk, where a diverged score is null
        study.tell(trial, recorded_score(status))


def tune(cfg: DictConfig) -> dict:
    """Run (or join, or read) the cell group's study until grid.tuning.trials runs vouch for it;
    returns the outcome (also written to grids/<suite>/tuning/)."""
    study, space, wanted = open_study(cfg), search_space(cfg), int(cfg.grid.tuning.trials)
    safe = study_name(cfg).replace("/", "__")
    lock_path = Layout.at(cfg.results_dir).tuning_locks() / cfg.suite / f"{safe}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_path)  # counting the trials and asking for one: one worker at a time
    while True:
        with lock:
            recover_stale(study, cfg)
            trials = study.get_trials(deepcopy=False)
            counted, untrusted = vouched(cfg, trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            trial = hold = None
            if len(counted) + running < wanted:
                if untrusted:  # ask takes the oldest queued trial: a killed one first, else this one
                    study.enqueue_trial(untrusted[0])
                trial = study.ask(space)
                hold = TrialHold(cfg, trial.number)
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


def outcome_of(cfg: DictConfig, study: optuna.Study, space: dict) -> TuningOutcome:
    """The cell group's tuning outcome from the runs that vouch for its study: the best trial's values
    (lowest recorded score, then lowest trial number), counts, cost in epochs and the runs it rests on."""
    counted = vouched(cfg, study.get_trials(deepcopy=False))[0]
    scored = [(recorded_score(s), t.number, t) for t, s in counted.values() if s["status"] != "pruned"]
    if not scored:
        raise UserError(f"tuning {study_name(cfg)}: no trial completed (all {len(counted)} pruned)")
    score, _, best = min(scored, key=lambda item: item[:2])
    settings = cfg.grid.tuning
    return TuningOutcome(
        study=study_name(cfg), task=cfg.task.name, optimizer=cfg.optimizer.name, schedule=cfg.schedule.name,
        lr=best.params["lr"], weight_decay=best.params.get("weight_decay", 0.0), best_trial=best.number,
        best_score=score, trials=len(counted), pruned=sum(s["status"] == "pruned" for _, s in counted.values()),
        cost_epochs=sum(int(s.get("epochs_done") or 0) for _, s in counted.values()), runs=list(counted),
        space={k: [d.low, d.high] for k, d in space.items()}, budget=trial_budget(cfg),
        seed=trial_seed(settings), split="validation", storage=str(settings.storage or "sqlite"),
        sampler=f"QMC sobol scrambled seed {settings.seed}", pruning=prunes(cfg))


def write_outcome(cfg: DictConfig, study: optuna.Study, space: dict) -> dict:
    outcome = outcome_of(cfg, study, space).record()
    records.write_json_atomic(outcome_path(cfg), outcome)
    return outcome


def read_outcome(cfg: DictConfig) -> dict | None:
    """The saved outcome while its study and its runs still vouch for it (the plan's view: a grid job
    always asks the study, tune). None: there is none to trust, the study is (again) to run."""
    path, stored = outcome_path(cfg), storage_file(cfg)
    if not path.exists() or (stored is not None and not stored.exists()):
        return None
    try:
        saved = TuningOutcome.from_mapping(json.loads(path.read_text()), path)
        study = optuna.load_study(study_name=study_name(cfg), storage=storage(cfg))
        current = outcome_of(cfg, study, search_space(cfg))
    except (OSError, ValueError, KeyError, UserError, records.CorruptRecord):  # unreadable, older: to run
        return None
    vouched_for = all(getattr(saved, k) == getattr(current, k) for k in VOUCHED)
    return saved.record() if vouched_for else None


def outcome_path(cfg: DictConfig) -> Path:
    name = f"{cfg.task.name}__{cfg.optimizer.name}__{cfg.schedule.name}.json"
    return Layout.at(cfg.results_dir).tuning_outcomes(cfg.suite) / name


def tuned(cfg: DictConfig, outcome: dict) -> DictConfig:
    """The cell's config at the tuned values (its seeds and budget search run with these)."""
    return OmegaConf.merge(cfg, {"optimizer": {"lr": outcome["lr"], "weight_decay": outcome["weight_decay"]}})
