"""The digits twins through the engine: digits_finetune's pre-training is an ordinary run, trained once and
found again by its run id; the finetune's run id depends on the pre-training config, not on where its
checkpoint lies; digits_resnet's data comes from the shared resident loader."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_cfg, execute_at
from results import records
from results.errors import UserError
from runners.spec import resolve_run
from runners.run import make_task, with_pretrained
from suites.digits import DigitsResNet
from suites.vision.digits_twins import DigitsFinetune

# Both runs shrunk: a narrow body, one pre-training epoch, one epoch per fine-tuning stage.
TINY_FINETUNE = ["task=digits_finetune", "progress=false", "epochs=2", "task.width=8", "task.blocks=2",
                 "task.head_hidden=8", "task.pretrain.task.width=8", "task.pretrain.task.epochs=1"]


def pretrain_runs(results):
    return sorted(p for p in (results / "runs" / "pretrain").iterdir() if p.is_dir())


def test_finetune_trains_its_pretraining_once_then_finds_it(tmp_path, one_thread):
    results = tmp_path / "results"
    first = execute_at(compose_cfg([*TINY_FINETUNE, f"results_dir={results}"]))
    [pre] = pretrain_runs(results)
    status = json.loads((pre / records.STATUS_FILE).read_text())
    assert status["task"] == "digits_pretrain" and status["status"] == "completed"
    assert status["optimizer"] == "adam_l2" and status["schedule"] == "one_cycle" and status["seed"] == 0
    assert [r["epoch"] for r in records.read_metrics(pre / records.METRICS_FILE)] == [1]
    assert (pre / records.CONFIG_FILE).exists() and (pre / records.CHECKPOINT_FILE).exists()
    assert json.loads((first / records.STATUS_FILE).read_text())["status"] == "completed"
    stamps = {p.name: p.stat().st_mtime_ns for p in pre.iterdir()}

    second = execute_at(compose_cfg([*TINY_FINETUNE, "seed=1", f"results_dir={results}"]))
    assert second != first and pretrain_runs(results) == [pre]
    assert {p.name: p.stat().st_mtime_ns for p in pre.iterdir()} == stamps  # found, not retrained


def test_finetune_starts_from_the_pretraining_checkpoint(tmp_path, one_thread):
    cfg = compose_cfg([*TINY_FINETUNE, f"results_dir={tmp_path}"])
    model = make_task(with_pretrained(resolve_run(cfg)), torch.device("cpu")).build_model()
    [pre] = pretrain_runs(tmp_path)
    state = torch.load(pre / records.CHECKPOINT_FILE, weights_only=True)["model"]
    assert torch.equal(model.early[0][0].weight, state["stem.0.weight"])
    assert torch.equal(model.late[0].bn2.running_mean, state["blocks.1.bn2.running_mean"])


def test_finetune_run_id_depends_on_the_pretraining_config_not_its_place(tmp_path):
    base = resolve_run(compose_cfg([*TINY_FINETUNE, "results_dir=/a"])).path
    assert resolve_run(compose_cfg([*TINY_FINETUNE, "results_dir=/b"])).path.name == base.name
    for change in ("task.pretrain.seed=1", "task.pretrain.task.epochs=2", "task.pretrain.optimizer.lr=1e-3"):
        assert resolve_run(compose_cfg([*TINY_FINETUNE, "results_dir=/a", change])).path.name != base.name


def test_finetune_without_weights_says_how_to_get_them():
    cfg = compose_cfg(["task=digits_finetune", "task.pretrain=null"])
    with pytest.raises(UserError, match="pretrained_path is not set"):
        DigitsFinetune(cfg.task)


def test_grid_plan_for_digits_finetune_trains_nothing(tmp_path):
    args = ["suite=mini", "task=digits_finetune", "seed=0", "optimizer=adamw", "schedule=one_cycle", "plan=true"]
    plan = subprocess.run([sys.executable, "-m", "runners.grid", *args, f"results_dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert "digits_finetune/adamw/one_cycle/seed0" in plan.stdout and "0 done" in plan.stdout
    assert not (tmp_path / "runs").exists()


def test_a_grid_job_finds_its_pretraining_from_the_cell_file(tmp_path):
    """A grid job reads its cell back from the launch's file (node types lost): the pre-training run must
    still be built from its task's schema (a regression: 'dict' object has no attribute 'target')."""
    tiny = ["task.width=8", "task.head_hidden=8", "task.pretrain.task.width=8", "task.pretrain.task.epochs=1",
            "task.epochs=2", "progress=false", "grid.tuning.trials=0"]
    out = subprocess.run([sys.executable, "-m", "runners.grid", "suite=mini", "task=digits_finetune", "seed=0",
                          "optimizer=adamw", "schedule=reference", *tiny, f"results_dir={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "failures: 0" in out.stdout and len(pretrain_runs(tmp_path)) == 1


def test_digits_resnet_batches_are_shifted_training_images():
    task = DigitsResNet(compose_cfg(["task=digits_resnet"]).task)
    x, y = next(iter(task.train_batches(0, torch.Generator().manual_seed(0))))
    assert x.shape == (64, 1, 8, 8) and y.shape == (64,)
    background = task.train.to_input(torch.zeros(1, 8, 8, 1, dtype=torch.uint8))[0, 0, 0, 0]
    padded = torch.nn.functional.pad(task.train.to_input(task.train.images), (1, 1, 1, 1), value=background)
    shifted = torch.cat([padded[..., dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)]).flatten(1)
    distance = torch.cdist(x.flatten(1), shifted, compute_mode="donot_use_mm_for_euclid_dist")
    distance[y[:, None] != task.train.labels.repeat(9)[None]] = float("inf")
    # Each is a training image of its own label moved by at most one pixel, the background filling in.
    assert distance.min(1).values.max() < 1e-4
    x_test, _ = next(iter(task.plain_view()))
    assert torch.allclose(x_test, task.test.to_input(task.test.images))  # evaluated unshifted
