"""Run records made for the report's tests (no training): helpers only, no test here.

A run's test_acc climbs and first meets the target at epoch `reach_at` (budget-free schedules) or, for a
1cycle probe, ends above the target exactly when its budget is at least `reach_at`.
"""
from __future__ import annotations

import json
from pathlib import Path

from results import records

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
              budget_free: bool | None = None, metric: str | None = None, **overrides) -> Path:
    """One run directory with config.yaml, metrics.jsonl and status.json shaped as the engine writes them.
    `perplexity=True`: a lower-is-better val_ppl = 200 - 100 x accuracy, target 110 (mode min).
    Budget-free by default for schedule `reference`; `metric` renames the target metric."""
    budget_free = schedule == "reference" if budget_free is None else budget_free
    label, run_id = run_id, fixture_id(run_id)
    path = results / "runs" / suite / run_id
    path.mkdir(parents=True, exist_ok=True)
    metric, target = ("val_ppl", 200 - 100 * TARGET) if perplexity else (metric or "test_acc", TARGET)
    accs = _curve(epochs, reach_at, budget_free)
    values = [200 - 100 * a for a in accs] if perplexity else accs
    rows = []
    for epoch, value in enumerate(values, start=1):
        lr = 0.1 if budget_free else 0.003 * (1 - abs(2 * epoch / epochs - 1)) + 1e-4
        rows.append({"epoch": epoch, "step": 10 * epoch, "wall_s": 0.5 * epoch, "train_loss": 1.0 / epoch,
                     "lr": lr, "momentum": 0.9, metric: value,
                     "lr_trace": [[epoch - 1.0, lr, 0.9], [epoch - 0.5, lr, 0.9]]})
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
               task: str = "digits_resnet", budgets: tuple[int, ...] = (2, 4, 8), **kwargs) -> None:
    """A cell's runs: one per seed (reference) or one probe per budget per seed (one_cycle)."""
    for seed, reach_at in enumerate(reach):
        for budget in ((TASK_EPOCHS,) if schedule == "reference" else budgets):
            write_run(results, suite, f"{task[:6]}-{optimizer}-{schedule}-s{seed}-b{budget}", task=task,
                      optimizer=optimizer, schedule=schedule, seed=seed, epochs=budget, reach_at=reach_at,
                      **kwargs)


def write_suite(results: Path, suite: str = "mini", sgd_ref: list | None = None,
                adamw_1c: list | None = None) -> Path:
    """SGD + reference and AdamW + 1cycle on digits_resnet (the CIFAR claim's twin), 3 seeds each."""
    write_cell(results, suite, "sgd", "reference", sgd_ref if sgd_ref is not None else [6, 6, 7])
    write_cell(results, suite, "adamw", "one_cycle", adamw_1c if adamw_1c is not None else [2, 2, 4])
    return results


def write_recipe(results: Path, suite: str, task: str, recipe: str, reach: list[int | None], epochs: int,
                 optimizer: str = "adamw", schedule: str = "one_cycle_phases", budget_free: bool = False,
                 **kwargs) -> None:
    """A published recipe's cell: one run per seed at the recipe's budget (as the grid runs it)."""
    for seed, reach_at in enumerate(reach):
        write_run(results, suite, f"{recipe}-s{seed}", task=task, optimizer=optimizer, schedule=schedule,
                  seed=seed, epochs=epochs, reach_at=reach_at, budget_free=budget_free, recipe=recipe,
                  max_epochs=epochs, **kwargs)
