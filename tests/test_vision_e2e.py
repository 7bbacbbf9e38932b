"""End to end through the real engine: each full-scale vision task at toy size on tiny files in the
real formats (through its blog overlay), and the mini twins reaching their targets with adamw +
one_cycle."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

from conftest import compose_cfg, execute_at
from results import records
from vision_files import write_cars_torchvision, write_cifar10

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def finished(path):
    status = json.loads((path / "status.json").read_text())
    return status, records.read_metrics(path / "metrics.jsonl")


def test_cifar10_wrn22_blog18_at_toy_size(tmp_path, one_thread):
    write_cifar10(tmp_path / "data")
    path = execute_at(compose_cfg([
        "+recipe=cifar10_blog18", f"results_dir={tmp_path / 'results'}", "progress=false", "epochs=2",
        f"task.data_dir={tmp_path / 'data'}", "task.verify_md5=false",
        "task.widen=1", "task.blocks_per_group=1", "task.batch_size=8", "task.eval_batch_size=4"]))
    status, rows = finished(path)
    assert status["status"] == "completed" and status["task"] == "cifar10_wrn22"
    assert status["schedule_kind"] == "one_cycle_phases" and status["target"]["metric"] == "test_acc_tta"
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["step"] == 3  # 20 images / batch 8
    assert {"test_acc", "test_loss", "test_acc_tta", "test_loss_tta"} <= rows[-1].keys()
    assert rows[0]["momentum"] < 0.95  # Adam's beta1 cycled by the blog schedule


def test_cars_resnet_blog_two_stages_at_toy_size(tmp_path, monkeypatch, one_thread):
    write_cars_torchvision(tmp_path / "data")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    path = execute_at(compose_cfg([
        "+recipe=cars_blog", f"results_dir={tmp_path / 'results'}", "progress=false", "epochs=2",
        f"task.data_dir={tmp_path / 'data'}", f"task.cache_dir={tmp_path / 'cache'}", "task.cache_hw=[24,36]",
        "task.image_size=16", "task.arch=resnet18", "task.batch_size=4", "task.eval_batch_size=4",
        "task.tta=flip", "task.head_hidden=8"]))
    status, rows = finished(path)
    assert status["status"] == "completed" and status["optimizer"] == "adam_l2"
    assert [r["step"] for r in rows] == [2, 4]  # 6 images / batch 4, one epoch per stage
    # The trace's LR is the head's (last group): stage 1 peaks at 1e-2, stage 2 at 3e-3.
    peak = [max(t[1] for t in r["lr_trace"]) for r in rows]
    assert peak[0] <= 1e-2 * 1.0001 and peak[1] <= 3e-3 * 1.0001 and peak[1] < peak[0] / 2
    assert "test_acc_tta" in rows[-1] and (tmp_path / "cache" / "stanford_cars").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["digits_wrn", "digits_finetune"])
def test_mini_twin_reaches_its_target(tmp_path, task, one_thread):
    path = execute_at(compose_cfg([f"task={task}", "optimizer=adamw", "schedule=one_cycle", "progress=false",
                                f"results_dir={tmp_path / 'results'}"]))
    status, rows = finished(path)
    assert status["status"] == "completed", status
    assert status["epochs_to_target"] is not None, [r["test_acc"] for r in rows]
    if task == "digits_finetune":  # its pre-training: one ordinary run, checkpoint kept
        [pre] = [p for p in (tmp_path / "results" / "runs" / "pretrain").iterdir() if p.is_dir()]
        assert finished(pre)[0]["status"] == "completed" and (pre / "checkpoint.pt").exists()
