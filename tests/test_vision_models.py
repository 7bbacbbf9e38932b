"""Vision models: WRN-22's size, the fine-tuning wrapper's groups and head, pretrained weights from
the torch.hub cache (and the message when they are missing), frozen BatchNorm statistics."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from runners.engine import Stage, stage_optimizer, train_mode
from results.errors import UserError
from runners.optimizers import build_optimizer
from suites.vision.resnet_head import (BodyHead, ConcatPool, hub_weights_path,
                                       torchvision_body_head)
from suites.vision.wrn import PreActBlock, WideResNet, wrn_22


def test_wrn22_matches_fastai_wrn_22_size_and_shape():
    model = wrn_22()
    # fastai 0.7 wrn_22 (3 groups, N=3, k=6, widths 16/96/192/384): 9,658,458 parameters.
    assert sum(p.numel() for p in model.parameters()) == 9_658_458
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 9 and sum(b.shortcut is not None for b in blocks) == 3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19  # the stem and two per block
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_toy_wrn_on_digits_shape():
    model = WideResNet(groups=2, blocks_per_group=1, widen=2, classes=10, in_channels=1)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_body_head_groups_and_fastai_head():
    model = torchvision_body_head("resnet18", classes=7, pretrained=False, weights="IMAGENET1K_V1")
    groups = model.param_groups()
    assert list(groups) == ["early", "late", "head"]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    # early = conv1, bn1, relu, maxpool, layer1, layer2; late = layer3, layer4 (fastai lr_cut 6).
    assert len(model.early) == 6 and len(model.late) == 2
    head_types = [type(m).__name__ for m in model.head]
    assert head_types == ["ConcatPool", "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                          "Dropout", "Linear"]
    assert model.head[3].in_features == 1024 and model.head[-1].out_features == 7
    assert [model.head[2].p, model.head[6].p] == [0.25, 0.5]
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    x = torch.randn(2, 5, 3, 3)
    assert torch.equal(ConcatPool()(x), torch.cat([x.amax((2, 3)), x.mean((2, 3))], 1))


def test_pretrained_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = hub_weights_path("resnet18", "IMAGENET1K_V1")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError) as missing:
        torchvision_body_head("resnet18", 5, pretrained=True, weights="IMAGENET1K_V1")
    for needle in (str(path), "checkpoints", "download.pytorch.org", "task.weights_path", "make data"):
        assert needle in str(missing.value)
    reference = torchvision.models.resnet18()
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = torchvision_body_head("resnet18", 5, pretrained=True, weights="IMAGENET1K_V1")
    assert torch.equal(model.early[0].weight, reference.conv1.weight)
    assert torch.equal(model.late[1][1].conv2.weight, reference.layer4[1].conv2.weight)
    other = tmp_path / "elsewhere.pth"
    torch.save(reference.state_dict(), other)
    model = torchvision_body_head("resnet18", 5, True, "IMAGENET1K_V1", weights_path=str(other))
    assert torch.equal(model.early[0].weight, reference.conv1.weight)


def test_resnet50_weights_are_the_original_v1_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert hub_weights_path("resnet50", "IMAGENET1K_V1").name == "resnet50-0676ba61.pth"
    with pytest.raises(UserError, match="unknown weights"):
        hub_weights_path("resnet50", "IMAGENET9K")


def test_frozen_groups_keep_batchnorm_statistics():
    model = BodyHead(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), nn.Sequential(nn.BatchNorm2d(4)),
                     nn.Sequential(ConcatPool(), nn.BatchNorm1d(8), nn.Linear(8, 2)))
    opt_cfg = {"_target_": "torch.optim.Adam", "weight_decay": 0.0}
    build_optimizer(stage_optimizer(opt_cfg, Stage(0, 1, freeze=("early", "late"))), model, 1e-3)
    model.train()
    body_before = model.early[1].running_mean.clone()
    head_before = model.head[1].running_mean.clone()
    train_mode(model)
    model(torch.randn(4, 3, 8, 8) + 3)
    assert torch.equal(model.early[1].running_mean, body_before) and not model.late[0].training
    assert not torch.equal(model.head[1].running_mean, head_before) and model.head[1].training
    build_optimizer(stage_optimizer(opt_cfg, Stage(1, 2)), model, 1e-3)  # stage 2: all unfrozen
    train_mode(model)
    model(torch.randn(4, 3, 8, 8) + 3)
    assert not torch.equal(model.early[1].running_mean, body_before)


def test_the_cars_recipe_starts_its_head_batchnorms_uniform_as_fastai_07():
    """fastai 0.7's head kept PyTorch 0.4's U(0, 1) BatchNorm scales; +recipe=cars_blog asks for them,
    while the task's default keeps PyTorch's ones."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    recipe = yaml.safe_load((root / "conf" / "recipe" / "cars_blog.yaml").read_text())
    assert recipe["task"]["head_bn_init"] == "uniform"
    torch.manual_seed(0)
    blog = torchvision_body_head("resnet18", 7, False, "IMAGENET1K_V1", bn_init="uniform").head
    plain = torchvision_body_head("resnet18", 7, False, "IMAGENET1K_V1").head
    for i in (1, 5):
        w = blog[i].weight.detach()
        assert float(w.min()) >= 0 and float(w.max()) < 1 and float(w.std()) > 0.1
        assert torch.equal(plain[i].weight, torch.ones_like(plain[i].weight))
