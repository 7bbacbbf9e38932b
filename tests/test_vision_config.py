"""Vision configs: every task composes with every optimizer and schedule; each blog overlay composes
to exactly the blog's hyperparameters; the Cars stages give the blog's per-group LRs."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_cfg
from runners.spec import configured_lr, resolve_schedule, validate
from runners.engine import plan_stages
from runners.schedules import build_schedule

TASKS = ["cifar10_wrn22", "cars_resnet50", "digits_wrn", "digits_finetune"]
OPTIMIZERS = ["sgd", "adam_l2", "adamw", "amsgrad"]


# Every optimizer with the task's own reference schedule, and adamw with each 1cycle variant (the
# optimizer and schedule groups are independent; each compose costs a second or two on 2 cores).
COMBINATIONS = [(o, "reference") for o in OPTIMIZERS] + [("adamw", s) for s in ("one_cycle", "one_cycle_phases")]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("optimizer,schedule", COMBINATIONS)
def test_task_composes_with_optimizer_and_schedule(task, optimizer, schedule):
    cfg = compose_cfg([f"task={task}", f"optimizer={optimizer}", f"schedule={schedule}"])
    sched = resolve_schedule(cfg)
    lr, origin = configured_lr(cfg)
    validate(cfg, sched, lr)
    assert origin == f"task.lr[{optimizer}]" and lr > 0
    assert cfg.task.target.metric == "test_acc"
    stages = plan_stages(OmegaConf.to_container(cfg.task.stages), cfg.epochs)
    for stage in stages:  # each stage's schedule builds over its own epochs
        build_schedule(sched, stage.end - stage.start)(0.0)


BLOG = {
    "cifar10_blog": {
        "task.name": "cifar10_wrn22", "task.batch_size": 128, "task.pad": 4, "task.flip": True,
        "task.groups": 3, "task.blocks_per_group": 3, "task.widen": 6, "task.tta": "off",
        "recipe": "cifar10_blog", "task.epochs": 30, "epochs": 30, "optimizer._target_": "torch.optim.Adam", "optimizer.lr": 3e-3,
        "optimizer.weight_decay": 0.1, "optimizer.wd_mode": "decoupled",
        "optimizer.kwargs.betas": [0.95, 0.99], "optimizer.kwargs.eps": 1e-8,
        "optimizer.kwargs.amsgrad": False, "schedule.kind": "one_cycle_phases",
        "schedule.warmup": 13.875, "schedule.flat": 0.0, "schedule.down": 13.875, "schedule.final": 2.25,
        "schedule.div": 10.0, "schedule.moms": [0.95, 0.85], "schedule.final_shape": "linear",
        "schedule.lin_end_div": 100.0, "task.target.metric": "test_acc", "task.target.value": 0.94},
    "cifar10_blog18": {
        "recipe": "cifar10_blog18", "task.name": "cifar10_wrn22", "task.epochs": 18, "epochs": 18,
        "optimizer.lr": 3e-3, "optimizer.weight_decay": 0.1,
        "optimizer.wd_mode": "decoupled", "optimizer.kwargs.betas": [0.95, 0.99],
        "schedule.warmup": 8.325, "schedule.down": 8.325, "schedule.final": 1.35, "schedule.div": 10.0,
        "task.tta": "fastai", "task.target.metric": "test_acc_tta", "task.target.value": 0.94},
    "cars_blog": {
        "recipe": "cars_blog", "task.name": "cars_resnet50", "task.epochs": 60, "epochs": 60,
        "task.batch_size": 128, "task.image_size": 224,
        "task.max_zoom": 1.05, "task.max_rotate": 10.0, "task.lighting": 0.05, "task.flip": True,
        "task.arch": "resnet50", "task.weights": "IMAGENET1K_V1", "task.tta": "fastai",
        "optimizer._target_": "torch.optim.Adam", "optimizer.lr": 1e-2, "optimizer.weight_decay": 1e-3,
        "optimizer.wd_mode": "l2", "optimizer.kwargs.betas": [0.95, 0.99], "schedule.warmup": 0.45,
        "schedule.flat": 0.0, "schedule.down": 0.45, "schedule.final": 0.1, "schedule.div": 10.0,
        "schedule.moms": [0.95, 0.85], "schedule.final_shape": "linear", "schedule.lin_end_div": 100.0,
        "task.target.value": 0.90},
    # CIFAR-10's published baseline: szagoruyko/wide-residual-networks scripts/train_cifar.sh:3-9 @51af0c5
    # and train.lua:19-25 @06e84a4 (its epoch loop lowers the LR before epoch 60, i.e. after 59 done).
    "cifar10_wrn_paper": {
        "recipe": "cifar10_wrn_paper", "task.name": "cifar10_wrn22", "task.epochs": 200, "epochs": 200,
        "task.batch_size": 128, "optimizer._target_": "torch.optim.SGD", "optimizer.lr": 0.1,
        "optimizer.weight_decay": 5e-4, "optimizer.wd_mode": "l2", "optimizer.kwargs.momentum": 0.9,
        "optimizer.kwargs.nesterov": True, "schedule.kind": "step", "schedule.milestones": [59, 119, 159],
        "schedule.gamma": 0.2, "task.target.metric": "test_acc", "task.target.value": 0.94},
}


@pytest.mark.parametrize("recipe", sorted(BLOG))
def test_blog_overlay_composes_to_the_blog_hyperparameters(recipe):
    cfg = compose_cfg([f"+recipe={recipe}"])
    for key, expected in BLOG[recipe].items():
        value = OmegaConf.select(cfg, key)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected, key
    assert cfg.optimizer.no_decay_bias_norm is False  # fastai 0.7 decays every parameter
    lr, origin = configured_lr(cfg)
    validate(cfg, resolve_schedule(cfg), lr)
    assert origin == "optimizer.lr"


def test_cifar_blog_lr_path_is_3e4_3e3_3e4_3e6():
    cfg = compose_cfg(["+recipe=cifar10_blog"])
    schedule = build_schedule(resolve_schedule(cfg), cfg.epochs)
    lrs = [cfg.optimizer.lr * schedule(e)[0] for e in (0.0, 13.875, 27.75, 30.0)]
    assert lrs == pytest.approx([3e-4, 3e-3, 3e-4, 3e-6])
    assert [schedule(e)[1] for e in (0.0, 13.875, 27.75, 29.0)] == pytest.approx([0.95, 0.85, 0.95, 0.95])


def test_cars_blog_stages_give_the_blog_learning_rates():
    cfg = compose_cfg(["+recipe=cars_blog"])
    head, full = plan_stages(OmegaConf.to_container(cfg.task.stages), cfg.epochs)
    assert (head.start, head.end, full.start, full.end) == (0, 20, 20, 60)
    assert set(head.freeze) == {"early", "late"} and not full.freeze
    base = configured_lr(cfg)[0]
    assert base * head.lr_mult == pytest.approx(1e-2)
    group_lrs = {name: base * full.lr_mult * mult for name, mult in dict(full.group_lr_mult).items()}
    assert group_lrs == pytest.approx({"early": 3e-3 / 9, "late": 3e-3 / 3})
    assert base * full.lr_mult == pytest.approx(3e-3)  # the head's stage-2 LR


def test_digits_finetune_stages_mirror_cars():
    cars = compose_cfg(["task=cars_resnet50"]).task.stages
    digits = compose_cfg(["task=digits_finetune"]).task.stages
    for a, b in zip(cars, digits):
        assert list(a.freeze) == list(b.freeze) and a.lr_mult == b.lr_mult
        assert dict(a.group_lr_mult) == dict(b.group_lr_mult)
        assert a.frac / sum(s.frac for s in cars) == pytest.approx(b.frac / sum(s.frac for s in digits))
