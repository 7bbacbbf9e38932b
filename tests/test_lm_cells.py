"""The grid's language-model cells run as those models need (issue 20, section 2): each task's sourced
gradient clipping per optimizer (recorded with its origin), a per-task 1cycle momentum range, momentum
cycled only for the optimizers a source cycles (SGD, the Adam family), and NT-ASGD + reference as a tuned
cell of the language models only (grid.extra_pairs)."""
import json
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_all, compose_cfg, execute_at
from results.errors import UserError
from runners.spec import configured_clip, configured_lr, resolve_run, resolve_schedule, validate
from runners.grid.cells import cell_overrides

LMS = ("awd_lstm_wt2", "qrnn_wt2", "synth_awd_lstm", "synth_qrnn")
SGD_FAMILY, ADAM_FAMILY, NEW = ("sgd", "ntasgd"), ("adam_l2", "adamw", "amsgrad"), ("sf_adamw", "lion", "muon")
# A synthetic-twin run of seconds (a tiny AWD-LSTM on 1200 tokens, one epoch).
SYNTH = ["task=synth_awd_lstm", "task.train_tokens=1200", "task.valid_tokens=300", "task.test_tokens=300",
         "task.emb_size=8", "task.hidden_size=12", "task.batch_size=8", "task.bptt=10", "task.eval_batch_size=5",
         "task.test_batch_size=5", "task.blog_eval_bptt=100", "schedule=one_cycle", "epochs=1", "progress=false"]


# --- 1. Gradient clipping: the task's, per optimizer, unless the run sets one.

@pytest.mark.parametrize("task", LMS)
def test_language_models_clip_every_optimizer_at_its_sourced_value(task):
    names = (*SGD_FAMILY, *ADAM_FAMILY, *NEW)
    cfgs = compose_all([[f"task={task}", f"optimizer={name}"] for name in names])
    clips = {name: configured_clip(cfg) for name, cfg in zip(names, cfgs)}
    expected = {name: 0.25 if name in SGD_FAMILY else 0.12 for name in names}
    assert clips == {name: (value, f"task.clip_grad[{name}]") for name, value in expected.items()}
    assert [resolve_run(cfg).run.clip_grad for cfg in cfgs] == list(expected.values())  # what the engine reads
    assert all(cfg.clip_grad is None for cfg in cfgs)  # the composed config keeps the null (the run id)


def test_vision_tasks_do_not_clip_and_the_run_and_recipes_keep_their_own():
    vision, run_set, off, blog, ref = compose_all([
        ["task=cifar10_wrn22", "optimizer=sgd"], ["task=awd_lstm_wt2", "clip_grad=0.5"],
        ["task=awd_lstm_wt2", "clip_grad=0"], ["+recipe=awd_lstm_blog"], ["+recipe=qrnn_reference"]])
    assert configured_clip(vision) == (None, "none given: no clipping")
    assert configured_clip(run_set) == (0.5, "clip_grad")
    assert configured_clip(off) == (None, "clip_grad=0: no clipping") and resolve_run(off).run.clip_grad is None
    assert configured_clip(blog) == (0.12, "clip_grad") and configured_clip(ref) == (0.25, "clip_grad")


def test_the_run_clips_at_the_task_value_and_records_it(results, monkeypatch, one_thread):
    seen = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda p, n, *a, **k: seen.append(n) or clip(p, n))
    path = execute_at(compose_cfg([*SYNTH, "optimizer=sgd", f"results_dir={results}"]))
    status = json.loads((path / "status.json").read_text())
    assert status["clip_grad"] == {"value": 0.25, "origin": "task.clip_grad[sgd]"}
    assert seen and set(seen) == {0.25}


@pytest.mark.parametrize("override,message", [
    ("task.clip_grad.adamw=-1", "task.clip_grad[adamw] must be > 0 and finite, got -1.0"),
    ("clip_grad=-0.1", "clip_grad must be >= 0 and finite (0: no clipping) or null (the task's), got -0.1"),
    ("task.moms=[0.9]", "task.moms must be 2 values (high, low), each in [0, 1), got [0.9]"),
    ("optimizer=ntasgd", "optimizer.cycle_momentum=true needs a class with a momentum or betas argument; "
                         "runners.ntasgd.NTASGD has neither"),
])
def test_bad_clip_moms_or_cycle_values_are_refused_by_name(override, message):
    extra = ["optimizer.cycle_momentum=true"] if override == "optimizer=ntasgd" else []
    cfg = compose_cfg(["task=synth_awd_lstm", override, *extra])
    with pytest.raises(UserError, match=re.escape(message)):
        validate(cfg, resolve_schedule(cfg), configured_lr(cfg)[0])


# --- 2. The 1cycle momentum range is the task's, unless the schedule sets its own.

@pytest.mark.parametrize("task,high,low", [("awd_lstm_wt2", 0.8, 0.7), ("qrnn_wt2", 0.8, 0.7),
                                           ("synth_qrnn", 0.8, 0.7), ("cifar10_wrn22", 0.95, 0.85),
                                           ("cars_resnet50", 0.95, 0.85), ("digits_resnet", 0.95, 0.85)])
def test_one_cycle_momentum_comes_from_the_task(task, high, low):
    cycle, phases = compose_all([[f"task={task}"], [f"task={task}", "schedule=one_cycle_phases"]])
    assert resolve_schedule(cycle)["moms"] == [high, low, high]
    assert resolve_schedule(phases)["moms"] == [high, low]


def test_every_task_states_its_moms_and_an_explicit_schedule_range_wins():
    for path in sorted((ROOT / "conf" / "task").glob("*.yaml")):
        assert re.search(r"^moms: \[", path.read_text(), re.M), f"{path.name} states no moms"
    explicit, blog = compose_all([["task=awd_lstm_wt2", "schedule.moms=[0.9,0.8,0.9]"], ["+recipe=qrnn_blog"]])
    assert resolve_schedule(explicit)["moms"] == [0.9, 0.8, 0.9]
    assert resolve_schedule(blog)["moms"] == [0.8, 0.7]  # the recipe's own


# --- 3. Cycle only what a source cycles: the records' momentum is the optimizer's real one.

def momenta(results, optimizer):
    path = execute_at(compose_cfg([*SYNTH, f"optimizer={optimizer}", f"results_dir={results}"]))
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [point[2] for row in rows for point in row["lr_trace"]]


@pytest.mark.parametrize("optimizer,kept", [("lion", 0.9), ("muon", 0.95), ("sf_adamw", 0.9)])
def test_lion_muon_and_schedule_free_keep_their_momentum_under_one_cycle(optimizer, kept, results, one_thread):
    assert set(momenta(results, optimizer)) == {kept}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_sgd_and_adamw_still_cycle_in_the_task_range(optimizer, results, one_thread):
    trace = momenta(results, optimizer)
    assert min(trace) < 0.75 and max(trace) == pytest.approx(0.8, abs=0.02)  # 0.8 -> 0.7 -> 0.8
    assert all(0.7 - 1e-9 <= m <= 0.8 + 1e-9 for m in trace)


# --- 4. NT-ASGD + reference: a tuned grid cell of the language models only.

def pairs_by_task(cells):
    out = {}
    for cell in cells:
        args = dict(a.split("=", 1) for a in cell if "=" in a and not a.startswith("+"))
        if "optimizer" in args:
            out.setdefault(args["task"], set()).add((args["optimizer"], args["schedule"], args.get("seed")))
    return out


def test_the_blog_and_mini_suites_grid_ntasgd_reference_on_the_language_models_only():
    blog = pairs_by_task(cell_overrides("blog", [])[0])
    for task in ("awd_lstm_wt2", "qrnn_wt2"):
        assert {("ntasgd", "reference", str(s)) for s in range(3)} <= blog[task]
    for task in ("cifar10_wrn22", "cars_resnet50"):
        assert not any(o == "ntasgd" for o, _, _ in blog[task])
    mini = pairs_by_task(cell_overrides("mini", [])[0])
    assert {("ntasgd", "reference", str(s)) for s in range(2)} <= mini["synth_awd_lstm"] & mini["synth_qrnn"]
    assert not any(o == "ntasgd" for task in ("digits_resnet", "digits_wrn", "digits_finetune")
                   for o, _, _ in mini[task])


def test_a_command_line_sweep_keeps_an_extra_pair_only_when_it_still_includes_it():
    narrowed = pairs_by_task(cell_overrides("mini", ["task=synth_qrnn", "optimizer=adamw"])[0])
    assert {o for o, _, _ in narrowed["synth_qrnn"]} == {"adamw"}
    kept = pairs_by_task(cell_overrides("mini", ["task=synth_qrnn", "schedule=reference", "seed=0"])[0])
    assert ("ntasgd", "reference", "0") in kept["synth_qrnn"] and len(kept["synth_qrnn"]) == 5
    with pytest.raises(UserError, match=re.escape("grid.extra_pairs[synth_qrnn]: 'ntasgd' is not "
                                                  "'optimizer/schedule'")):
        cell_overrides("mini", ["task=synth_qrnn", "grid.extra_pairs.synth_qrnn=[ntasgd]"])


def test_the_blog_plan_lists_the_ntasgd_cells_without_training(tmp_path):
    plan = subprocess.run([sys.executable, "-m", "runners.grid", "suite=blog", "plan=true", "task=qrnn_wt2",
                           "schedule=reference", "seed=0", f"results_dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    lines = [line.split()[0] for line in plan.stdout.splitlines() if line.startswith("  qrnn_wt2/")]
    assert "qrnn_wt2/ntasgd/reference/seed0" in lines and "qrnn_wt2/sgd/reference/seed0" in lines
    assert not (tmp_path / "runs").exists()
