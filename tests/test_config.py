"""Every config composes; bad input fails at compose time (or before training) naming the key."""
import warnings

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF, compose_all, compose_cfg, run_cli
from results.errors import UserError
from results.targets import Target
from runners.spec import configured_lr, resolve_schedule, validate

TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
SCHEDULES = sorted(p.stem for p in (CONF / "schedule").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_composes_with_every_optimizer_and_schedule(task):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Hydra must not warn (version_base, defaults order, ...)
        # Every optimizer and every schedule (they compose independently of each other: one of each pair
        # fixed keeps the count linear, as Hydra's composition is the slow part).
        pairs = {(o, "one_cycle") for o in OPTIMIZERS} | {("adamw", s) for s in SCHEDULES}
        for cfg in compose_all([[f"task={task}", f"optimizer={optimizer}", f"schedule={schedule}",
                                 "optimizer.lr=0.01"] for optimizer, schedule in sorted(pairs)]):
            sched = resolve_schedule(cfg)
            validate(cfg, sched, configured_lr(cfg)[0])
            assert cfg.task.name == task and cfg.epochs == cfg.task.epochs


def test_core_groups_exist():
    assert {"sgd", "adam_l2", "adamw", "amsgrad"} <= set(OPTIMIZERS)
    assert {"one_cycle", "one_cycle_phases", "constant", "step", "reference"} <= set(SCHEDULES)


@pytest.mark.parametrize("override,key", [
    ("task.widht=3", "widht"),
    ("task.width=wide", "width"),
    ("optimizer.momentun=0.9", "momentun"),
    ("schedule.pct_start=abc", "pct_start"),
    ("sed=3", "sed"),
    ("task.target.value=high", "value"),
])
def test_unknown_key_or_wrong_type_fails_at_compose(override, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose_cfg([override])
    assert key in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize("override,key", [("+task.widht=3", "task.widht"),
                                          ("+optimizer.momentun=0.9", "optimizer.momentun"),
                                          ("+sed=3", "sed")])
def test_force_added_unknown_key_is_refused_before_training(override, key):
    cfg = compose_cfg([override])  # Hydra's `+` adds even to a typed node
    with pytest.raises(UserError, match=f"unknown config key.*'{key}'"):
        validate(cfg, resolve_schedule(cfg), configured_lr(cfg)[0])


@pytest.mark.parametrize("overrides,match", [
    (["optimizer.lr=0"], "optimizer.lr must be > 0"),
    (["optimizer.lr=-1e-3"], "optimizer.lr must be > 0"),
    (["schedule.pct_start=1.5"], r"schedule.pct_start must be in \(0, 1\)"),
    (["schedule.pct_start=0"], r"schedule.pct_start must be in \(0, 1\)"),
    (["optimizer.wd_mode=both"], "optimizer.wd_mode must be one of"),
    (["schedule=step", "schedule.gamma=2"], "schedule.gamma"),
    (["epochs=0"], "epochs must be >= 1"),
])
def test_invalid_values_name_the_key(overrides, match):
    cfg = compose_cfg(overrides)
    with pytest.raises(UserError, match=match):
        validate(cfg, resolve_schedule(cfg), configured_lr(cfg)[0])


def test_target_node_is_the_shared_target_and_can_be_overridden():
    # One definition (results/targets.py) for the config node, the engine and the report.
    cfg = compose_cfg(["task.target.value=0.3"])
    assert OmegaConf.get_type(cfg.task.target) is Target and cfg.task.target.value == 0.3
    with pytest.raises(UserError, match="task.target.mode must be max or min"):
        bad = compose_cfg(["task.target.mode=up"])
        validate(bad, resolve_schedule(bad), configured_lr(bad)[0])


def test_reference_resolves_to_the_tasks_schedule_and_is_checked():
    cfg = compose_cfg(["schedule=reference"])
    sched = resolve_schedule(cfg)
    assert sched["kind"] == cfg.task.reference.kind and sched["name"] == "reference"
    bad = compose_cfg(["schedule=reference", "++task.reference={kind: step, milestonez: [1]}"])
    with pytest.raises(UserError, match="milestonez"):
        resolve_schedule(bad)


def test_lr_comes_from_override_then_task_table():
    assert configured_lr(compose_cfg(["optimizer=sgd"])) == (0.1, "task.lr[sgd]")
    assert configured_lr(compose_cfg(["optimizer.lr=0.02"])) == (0.02, "optimizer.lr")
    cfg = compose_cfg(["optimizer=sgd", "++task.lr={sgd: 0.1, sgd/reference: 0.05}", "schedule=reference"])
    assert configured_lr(cfg) == (0.05, "task.lr[sgd/reference]")


@pytest.mark.parametrize("args,match", [
    (["task=imagenet"], "Could not find 'task/imagenet'"),
    (["optimizer=lamb"], "Could not find 'optimizer/lamb'"),
    (["schedule=sgdr"], "Could not find 'schedule/sgdr'"),
    (["optimizer.lr=-1"], "error: optimizer.lr must be > 0"),
])
def test_cli_bad_choice_is_one_clear_message(args, match, results):
    proc = run_cli([*args, f"results_dir={results}"])
    assert proc.returncode != 0
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert not (results / "runs").exists()  # nothing started, nothing written


def test_reading_a_config_never_runs_the_lr_range_test():
    """The LR range test is a step of a run (runners/run.py prepare), never of composing or checking."""
    cfg = compose_cfg(["task=digits_resnet", "optimizer=adamw", "~task.lr.adamw"])
    assert configured_lr(cfg) is None
