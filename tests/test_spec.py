"""The run spec (runners/spec.py): a config is read once, and what derives from a spec — a budget's
probe, an output-only change, the pre-training checkpoint — lands on the run id a composed config of
the same run has."""
from __future__ import annotations

import pytest

from conftest import compose_cfg
from results.errors import UserError
from runners.grid.cells import cell_overrides, compose_many, run_config
from runners.spec import Sourced, resolve_run


def test_every_probe_of_every_mini_cell_derived_from_the_cell_has_the_composed_run_id():
    cells = compose_many(cell_overrides("mini", ["results_dir=/r"])[0])
    assert len(cells) > 40
    for cell in cells:
        base = resolve_run(run_config(cell))
        top = int(cell.task.epochs)
        for budget in sorted({max(1, len(cell.task.stages)), top // 2 or 1, top}):
            for stop in (False, True):
                composed = resolve_run(run_config(cell, epochs=budget, stop_at_target=stop))
                derived = base.with_budget(budget, stop)
                assert derived.path == composed.path and derived.config == composed.config
                assert derived.run == composed.run


def test_an_output_only_change_keeps_the_run_and_a_real_change_is_refused():
    spec = resolve_run(compose_cfg(["task=digits_resnet", "results_dir=/r"]))
    halted = spec.with_output(halt_after=2, progress=False)
    assert halted.path == spec.path and halted.config["halt_after"] == 2 and halted.run.halt_after == 2
    for key, value in (("seed", 3), ("suite", "other"), ("results_dir", "/elsewhere")):
        with pytest.raises(ValueError):
            spec.with_output(**{key: value})
    with pytest.raises(UserError, match="stages"):
        resolve_run(compose_cfg(["task=digits_finetune", "results_dir=/r"])).with_budget(1, False)


def test_the_settings_carry_their_origin_and_the_engine_reads_the_resolved_ones():
    spec = resolve_run(compose_cfg(["task=synth_awd_lstm", "optimizer=adamw", "clip_grad=0.5", "results_dir=/r"]))
    assert spec.lr == Sourced(spec.lr.value, "task.lr[adamw]") and spec.lr.value > 0
    assert spec.clip_grad == (0.5, "clip_grad") and spec.run.clip_grad == 0.5
    assert spec.weight_decay.origin.startswith("task.wd[") and spec.run.optimizer.weight_decay == spec.weight_decay.value
    assert spec.config["optimizer"]["weight_decay"] is None  # the config as composed: the run id's input
    assert spec.config["schedule"] == dict(spec.schedule) and spec.pretrain is None


def test_a_pretraining_dependency_is_a_spec_in_the_shared_pretrain_suite():
    spec = resolve_run(compose_cfg(["task=digits_finetune", "results_dir=/r"]))
    assert spec.pretrain is not None and spec.pretrain.run.suite == "pretrain"
    assert spec.pretrain.path.parent.name == "pretrain" and spec.pretrain.run.keep_checkpoint
    started = spec.with_task(pretrained_path="/r/x.pt")
    assert started.run.task.pretrained_path == "/r/x.pt" and started.path == spec.path
