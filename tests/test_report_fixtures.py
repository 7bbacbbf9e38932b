"""Run records made for the report's tests (no training): helpers only, no test here.

A run's test_acc climbs and first meets the target at epoch `reach_at` (budget-free schedules) or, for a
1cycle probe, ends above the target exactly when its budget is at least `reach_at`.
"""
from __future__ import annotations

import json
from pathlib import Path

from results import records
from results.cell import CellRecord

TARGET = 0.9
TASK_EPOCHS = 8


def _curve(epochs: int, reach_at: int | None, budget_free: bool) -> list[float]:
    below = TARGET - 0.01  # long runs climb to just under the target until they reach it
    if budget_free:
        return [TARGET + 0.02 if reach_at is not None and e >= reach_at else min(TARGET - 0.2 + 0.01 * e, below)
                for e in range(1, epochs + 1)]
    met = reach_at is not None and epochs >= reach_at
    return ([min(TARGET - 0.3 + 0.02 * e, below) for e in range(1, epochs)]
            + [TARGET + 0.01 if met else TARGET - 0.05])


def write_run(results: Path, suite: str, run_id: str, *, task: str = "digits_resnet", optimizer: str = "sgd",
              schedule: str = "reference", seed: int = 0, epochs: int = TASK_EPOCHS,
              reach_at: int | None = None, status: str = "completed", perplexity: bool = False,
              budget_free: bool | None = None, metric: str | None = None, level: float | None = None,
              also: tuple[str, ...] = (), final: dict | None = None, **overrides) -> Path:
    """One run directory with config.yaml, metrics.jsonl and status.json shaped as the engine writes them.
    `perplexity=True`: a lower-is-better val_ppl = 200 - 100 x accuracy, target 110 (mode min).
    Budget-free by default for schedule `reference`; `metric` renames the target metric. `level`: the
    target the curve is built around (default TARGET, or 110 for perplexity); `also`: more metrics
    recorded with the same values each epoch; `final`: metrics added to the last row only (the
    end-of-run evaluations, e.g. val_ppl_blog)."""
    budget_free = schedule == "reference" if budget_free is None else budget_free
    label, run_id = run_id, fixture_id(run_id)
    path = results / "runs" / suite / run_id
    path.mkdir(parents=True, exist_ok=True)
    if perplexity:
        metric, target = metric or "val_ppl", 200 - 100 * TARGET if level is None else level
    else:
        metric, target = metric or "test_acc", TARGET if level is None else level
    accs = _curve(epochs, reach_at, budget_free)
    values = [target + 100 * (TARGET - a) for a in accs] if perplexity else [a + target - TARGET for a in accs]
    rows = []
    for epoch, value in enumerate(values, start=1):
        lr = 0.1 if budget_free else 0.003 * (1 - abs(2 * epoch / epochs - 1)) + 1e-4
        rows.append({"epoch": epoch, "step": 10 * epoch, "wall_s": 0.5 * epoch, "train_loss": 1.0 / epoch,
                     "lr": lr, "momentum": 0.9, metric: value, **{m: value for m in also},
                     "lr_trace": [[epoch - 1.0, lr, 0.9], [epoch - 0.5, lr, 0.9]]})
    rows[-1].update(final or {})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ett = next((e for e, a in enumerate(accs, start=1) if a >= TARGET), None)
    record = {
        "run_id": run_id, "suite": suite, "task": task, "optimizer": optimizer, "schedule": schedule,
        "schedule_kind": "step" if budget_free else "one_cycle", "seed": seed, "epochs": epochs,
        "max_epochs": max(TASK_EPOCHS, epochs), "budget_free": budget_free,
        "lr": {"value": 0.1, "origin": "task.lr"},
        "target": {"metric": metric, "value": target, "mode": "min" if perplexity else "max"},
        "status": status, "epochs_done": len(rows), "epochs_to_target": ett,
        "target_met_at_end": accs[-1] >= TARGET,
        "best": {metric: min(values) if perplexity else max(values)}, "final": {metric: values[-1]},
        "environment": {"torch": "2.14.1", "cuda": None, "device": "cpu", "device_name": "cpu",
                        "python": "3.11", "host": "test", "git_sha": "abc123", "command": "test"},
        "started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T00:01:00+00:00", "message": "",
    }
    record.update(overrides)
    (path / "status.json").write_text(json.dumps(record, indent=2))
    (path / "config.yaml").write_text(f"fixture: {label}\n")  # hashes to the run id, as a real run's
    return path


def fixture_id(label: str) -> str:
    """The run id of the fixture run written as `label` (write_run): the hash of its config.yaml."""
    return records.run_id({"fixture": label})


def write_cell(results: Path, suite: str, optimizer: str, schedule: str, reach: list[int | None],
               task: str = "digits_resnet", budgets: tuple[int, ...] = (2, 4, 8), tag: str = "",
               **kwargs) -> dict[int, list[str]]:
    """A cell's runs: one per seed (reference) or one probe per budget per seed (one_cycle). `tag` tells
    apart two sets of runs of one cell (tuned / untuned). Returns each seed's run labels."""
    labels: dict[int, list[str]] = {}
    for seed, reach_at in enumerate(reach):
        for budget in ((TASK_EPOCHS,) if schedule == "reference" else budgets):
            label = f"{task[:6]}-{optimizer}-{schedule}-s{seed}-b{budget}" + (f"-{tag}" if tag else "")
            write_run(results, suite, label, task=task, optimizer=optimizer, schedule=schedule, seed=seed,
                      epochs=budget, reach_at=reach_at, **kwargs)
            labels.setdefault(seed, []).append(label)
    return labels


def write_suite(results: Path, suite: str = "mini", sgd_ref: list | None = None,
                adamw_1c: list | None = None) -> Path:
    """SGD + reference and AdamW + 1cycle on digits_resnet (the CIFAR claim's twin), 3 seeds each."""
    write_cell(results, suite, "sgd", "reference", sgd_ref if sgd_ref is not None else [6, 6, 7])
    write_cell(results, suite, "adamw", "one_cycle", adamw_1c if adamw_1c is not None else [2, 2, 4])
    return results


def write_recipe(results: Path, suite: str, task: str, recipe: str, reach: list[int | None], epochs: int,
                 optimizer: str = "adamw", schedule: str = "one_cycle_phases", budget_free: bool = False,
                 finals: list[dict] | None = None, **kwargs) -> None:
    """A published recipe's cell: one run per seed at the recipe's budget (as the grid runs it);
    `finals[seed]`: metrics of that seed's last row (write_run's `final`)."""
    for seed, reach_at in enumerate(reach):
        write_run(results, suite, f"{recipe}-s{seed}", task=task, optimizer=optimizer, schedule=schedule,
                  seed=seed, epochs=epochs, reach_at=reach_at, budget_free=budget_free, recipe=recipe,
                  max_epochs=epochs, final=(finals or [{}] * len(reach))[seed], **kwargs)


# --- Tuning (issue 13): trials under runs/<suite>-tuning/, outcomes under grids/<suite>/tuning/, cell
# records under grids/<suite>/cells/ — shaped as the shared interface (spec) says the grid writes them.

def write_trial(results: Path, suite: str, task: str, optimizer: str, schedule: str, trial: int, *,
                lr: float, weight_decay: float, score: float | None, status: str = "completed",
                budget: int = TASK_EPOCHS, done: int | None = None, reach_at: int | None = None,
                label: str | None = None, **overrides) -> Path:
    """One trial: an ordinary run of suite `<suite>-tuning` on the validation split (val_acc), its
    hyperparameters, trial number, study and recorded score in status.json. `done`: epochs trained when
    it stopped early (a pruned trial), else the budget. `label`: the fixture label (default from the study)."""
    label = label or f"trial-{task}-{optimizer}-{schedule}-{trial}"
    path = write_run(results, f"{suite}-tuning", label, task=task,
                     optimizer=optimizer, schedule=schedule, epochs=done or budget, reach_at=reach_at,
                     status=status, metric="val_acc", lr={"value": lr, "origin": "optimizer.lr"},
                     weight_decay=weight_decay, split="validation", trial=trial,
                     study=f"{task}/{optimizer}/{schedule}", score=score, **overrides)
    if done is not None:  # the trial's budget, not the epochs it got to before it was stopped
        status_file = path / "status.json"
        status_file.write_text(json.dumps({**json.loads(status_file.read_text()), "epochs": budget}, indent=2))
    return path


def write_outcome(results: Path, suite: str, task: str, optimizer: str, schedule: str, **fields) -> dict:
    """The grid's tuning outcome of one cell group: grids/<suite>/tuning/<task>__<optimizer>__<schedule>.json."""
    outcome = {"study": f"{task}/{optimizer}/{schedule}", "task": task, "optimizer": optimizer,
               "schedule": schedule, "sampler": "QMC sobol scrambled seed 0",
               "storage": f"sqlite:///{results}/tuning/{suite}.db", **fields}
    path = results / "grids" / suite / "tuning" / f"{task}__{optimizer}__{schedule}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2))
    return outcome


def write_study(results: Path, suite: str, task: str, optimizer: str, schedule: str,
                trials: list[tuple], lr0: float, wd0: float, budget: int) -> dict:
    """A study's trials — (lr, wd, score, status[, done]) each — and its outcome: the recorded best is the
    lowest score among the trials not pruned; the space spans lr0 and wd0 by a factor 10 each way (a wd0
    of 0: WD not searched)."""
    cost, runs = 0, []
    for n, (lr, wd, score, status, *done) in enumerate(trials):
        path = write_trial(results, suite, task, optimizer, schedule, n, lr=lr, weight_decay=wd, score=score,
                           status=status, budget=budget, done=done[0] if done else None, reach_at=3)
        cost += done[0] if done else budget
        runs.append(path.name)
    kept = [(n, t) for n, t in enumerate(trials) if t[3] != "pruned"]
    best, (lr, wd, score, *_) = min(kept, key=lambda item: item[1][2])
    space = {"lr": [lr0 / 10, lr0 * 10], **({"weight_decay": [wd0 / 10, wd0 * 10]} if wd0 else {})}
    # "trials" counts every counted trial, pruned ones included (runners/grid/tuning.py write_outcome).
    return write_outcome(results, suite, task, optimizer, schedule, lr=lr, weight_decay=wd, best_trial=best,
                         best_score=score, trials=len(trials), pruned=len(trials) - len(kept), cost_epochs=cost,
                         space=space, budget=budget, split="validation", pruning=True, runs=runs)


def write_cell_records(results: Path, suite: str, task: str, optimizer: str, schedule: str,
                       labels: dict[int, list[str]], tuning: dict | None) -> None:
    """One cell record per seed, naming its runs (probes) and saying whether the cell ran tuned."""
    folder = results / "grids" / suite / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    for seed, seed_labels in labels.items():
        record = cell_record(f"{task}/{optimizer}/{schedule}/seed{seed}", task=task, optimizer=optimizer,
                             schedule=schedule, seed=seed, tuned=tuning is not None, tuning=tuning,
                             probes=[{"budget": 0, "run_id": fixture_id(label), "action": "trained"}
                                     for label in seed_labels])
        key = records.run_id({"labels": seed_labels})
        record.write(folder / f"{task}__{optimizer}__{schedule}__s{seed}__{key}.json")


def cell_record(cell: str, **fields) -> CellRecord:
    """A cell record as the grid writes one (results/cell.py), `fields` set, the rest plain."""
    task, rest = cell.split("/", 1)
    plain = dict(cell=cell, task=task, recipe=None, tuned=False, tuning=None, optimizer="o", schedule="s",
                 seed=0, budget_free=False, max_epochs=1, lr=None, status="ok", error=None,
                 epochs_to_target=None, censored=False, probes=[], runs_trained=0, trunk=None,
                 epochs_trained=0, started="2026-01-01T00:00:00", ended="2026-01-01T00:00:01", wall_s=1.0)
    return CellRecord(**{**plain, **fields})


def write_tuned_cell(results: Path, suite: str, optimizer: str, schedule: str, reach: list[int | None],
                     tuning: dict | None, task: str = "digits_resnet", **kwargs) -> None:
    """A grid cell's runs and cell records: tuned (at the outcome `tuning`) or, with None, untuned."""
    tag = "tuned" if tuning is not None else "untuned"
    labels = write_cell(results, suite, optimizer, schedule, reach, task=task, tag=tag, **kwargs)
    write_cell_records(results, suite, task, optimizer, schedule, labels, tuning)


# Per study: (lr, wd, score, status[, epochs done]). Budget-free scores are epochs to the validation
# target (a miss: budget + 1 + badness); 1cycle scores the negated final val_acc. Trial 3 is pruned.
STUDIES = {
    ("sgd", "reference"): ([(0.01, 5e-5, 8.4, "completed"), (0.1, 5e-4, 5.0, "completed"),
                            (0.5, 2e-3, 3.0, "completed"), (1.0, 5e-3, None, "pruned", 2)], 0.1, 5e-4),
    ("sgd", "one_cycle"): ([(0.03, 1e-4, -0.88, "completed"), (0.3, 1e-3, -0.92, "completed"),
                            (0.9, 4e-3, -0.85, "diverged"), (0.06, 2e-4, None, "pruned", 1)], 0.1, 5e-4),
    ("adamw", "reference"): ([(0.001, 0.01, 6.0, "completed"), (0.01, 0.05, 4.0, "completed"),
                              (0.0005, 0.1, 9.5, "completed")], 0.003, 0.01),
    ("adamw", "one_cycle"): ([(0.003, 0.05, -0.93, "completed"), (0.02, 0.002, -0.9, "completed"),
                              (0.0004, 0.02, -0.86, "completed"), (0.01, 0.09, None, "pruned", 2)], 0.003, 0.01),
}
TUNED_REACH = {("sgd", "reference"): [5, 5, 6], ("sgd", "one_cycle"): [4, 4, 8],
               ("adamw", "reference"): [4, 4, 4], ("adamw", "one_cycle"): [2, 2, 2]}


def write_tuned_suite(results: Path, suite: str = "mini", task: str = "digits_resnet",
                      reach: dict | None = None) -> Path:
    """A tuned mini on one twin: 4 studies (sgd, adamw x reference, one_cycle) with their outcomes, the
    tuned grid cells (3 seeds; `reach` overrides TUNED_REACH per cell), and an older untuned SGD +
    reference cell the tuned verdict must not read."""
    reach = {**TUNED_REACH, **(reach or {})}
    for (optimizer, schedule), (trials, lr0, wd0) in STUDIES.items():
        budget = TASK_EPOCHS if schedule == "reference" else 4
        outcome = write_study(results, suite, task, optimizer, schedule, trials, lr0, wd0, budget)
        write_tuned_cell(results, suite, optimizer, schedule, reach[(optimizer, schedule)], outcome, task=task)
    write_tuned_cell(results, suite, "sgd", "reference", [None, None, None], None, task=task)
    return results
