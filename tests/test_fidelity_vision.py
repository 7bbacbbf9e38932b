"""Fidelity of the CIFAR claim to the blog's own code (fastai 0.7 at commit 6768875, run by
sgugger/Adam-experiments train_cifar10.py @b1ede77): the WRN-22 block and the random-crop offsets."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from results.errors import UserError

from suites.vision.resident import CropFlip, draw_crop_flip
from suites.vision.tasks import Cifar10WRN, Cifar10WRNConf
from suites.vision.wrn import WideResNet, wrn_22
from vision_files import write_cifar10

CONF = Path(__file__).resolve().parents[1] / "conf" / "task"


# --- fastai 0.7's WRN, re-typed from fastai/models/cifar10/wideresnet.py:9-58 @6768875 (our own
# typing of that file; in-place ops kept, `Flatten` from fastai/layers.py is nn.Flatten). ---
def fa_conv_2d(ni, nf, ks, stride):
    return nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False)


def fa_bn_relu_conv(ni, nf, ks, stride):  # wideresnet.py:17-19 (bn(): weight 1, bias 0 = the default)
    return nn.Sequential(nn.BatchNorm2d(ni), nn.ReLU(inplace=True), fa_conv_2d(ni, nf, ks, stride))


class FastaiBasicBlock(nn.Module):  # wideresnet.py:23-38
    def __init__(self, ni, nf, stride, drop_p=0.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(ni)
        self.conv1 = fa_conv_2d(ni, nf, 3, stride)
        self.conv2 = fa_bn_relu_conv(nf, nf, 3, 1)
        self.drop = nn.Dropout(drop_p, inplace=True) if drop_p else None
        self.shortcut = fa_conv_2d(ni, nf, 1, stride) if ni != nf else (lambda x: x)  # noop

    def forward(self, x):
        x2 = F.relu(self.bn(x), inplace=True)
        r = self.shortcut(x2)
        x = self.conv1(x2)
        if self.drop:
            x = self.drop(x)
        x = self.conv2(x) * 0.2
        return x.add_(r)


class FastaiWideResNet(nn.Module):  # wideresnet.py:41-58
    def __init__(self, num_groups, N, num_classes, k=1, drop_p=0.0, start_nf=16):
        super().__init__()
        n_channels = [start_nf] + [start_nf * (2 ** i) * k for i in range(num_groups)]
        layers = [fa_conv_2d(3, n_channels[0], 3, 1)]
        for i in range(num_groups):
            layers += [FastaiBasicBlock(n_channels[i] if j == 0 else n_channels[i + 1], n_channels[i + 1],
                                        (1 if i == 0 else 2) if j == 0 else 1, drop_p) for j in range(N)]
        layers += [nn.BatchNorm2d(n_channels[3]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                   nn.Flatten(), nn.Linear(n_channels[3], num_classes)]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


def fastai_key(key: str, n_blocks: int) -> str:
    """Our state_dict key -> fastai's: body.i -> features.i (block bn1 -> bn, bn2 -> conv2.0,
    conv2 -> conv2.2); then BN, ReLU, pool, Flatten, Linear -> norm, head."""
    for ours, theirs in ((r"\.conv2\.", ".conv2.2."), (r"\.bn2\.", ".conv2.0."), (r"\.bn1\.", ".bn."),
                         (r"^body\.", "features."), (r"^norm\.", f"features.{n_blocks + 1}."),
                         (r"^head\.", f"features.{n_blocks + 5}.")):
        key = re.sub(ours, theirs, key)
    return key


def randomised(model: nn.Module, seed: int) -> nn.Module:
    """Every weight, BN affine and BN running statistic random, so no path hides behind init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=gen) + 0.5 if "running_var" in name else \
                    torch.randn(t.shape, generator=gen) * (0.1 if t.ndim > 1 else 0.5)
                t.copy_(values)
    return model


@pytest.mark.parametrize("k", [1, 2])  # k=1: the first block of group 1 is an identity block too
def test_wrn_matches_fastai_0_7_wide_resnet_in_eval_and_train(k):
    ours = randomised(WideResNet(groups=3, blocks_per_group=2, widen=k, classes=10), seed=k)
    theirs = FastaiWideResNet(num_groups=3, N=2, num_classes=10, k=k)
    n_blocks = 3 * 2
    theirs.load_state_dict({fastai_key(key, n_blocks): v for key, v in ours.state_dict().items()})  # strict
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for mode in ("eval", "train"):  # train: BN on batch statistics, as in fitting
        getattr(ours, mode)(), getattr(theirs, mode)()
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_wrn_22_size_and_the_textbook_identity_option():
    assert sum(p.numel() for p in wrn_22().parameters()) == 9_658_458  # fastai wrn_22's count
    blog = randomised(WideResNet(groups=3, blocks_per_group=2, widen=1), seed=0).eval()
    textbook = WideResNet(groups=3, blocks_per_group=2, widen=1, identity="input").eval()
    textbook.load_state_dict(blog.state_dict())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert (blog(x) - textbook(x)).abs().max() > 1e-3  # same weights, other identity: other network
    with pytest.raises(ValueError, match="identity must be one of"):
        WideResNet(identity="x")


def test_plain_batchnorms_start_as_pytorch_0_4_drew_them(tmp_path):
    # fastai@6768875 models/cifar10/wideresnet.py: each block's `self.bn` (:26) and the final BN (:54)
    # are plain nn.BatchNorm2d, whose weight PyTorch 0.4 (the blog's) drew U(0, 1) in
    # _BatchNorm.reset_parameters (`self.weight.data.uniform_()`; ones since PyTorch 1.0); the BN inside
    # conv2 is fastai's bn(), weight filled with 1 (:11-15, :19).
    torch.manual_seed(0)
    task = cifar_task(tmp_path)
    assert task.cfg.bn_init == "uniform"
    model = task.build_model()
    plain = [b.bn1.weight for b in model.body[1:]] + [model.norm.weight]
    assert all(0 <= w.min() and w.max() < 1 for w in plain)
    assert torch.cat([w.detach() for w in plain]).std() > 0.2  # U(0,1) has std 0.29; ones have 0
    assert all(torch.equal(b.bn2.weight, torch.ones_like(b.bn2.weight)) for b in model.body[1:])
    ones = WideResNet(groups=3, blocks_per_group=1, widen=1, bn_init="ones")
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in ones.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def cifar_task(tmp_path, **overrides) -> Cifar10WRN:
    """cifar10_wrn22 as conf/task/cifar10_wrn22.yaml sets it, on tiny CIFAR files."""
    write_cifar10(tmp_path)
    yaml = OmegaConf.load(CONF / "cifar10_wrn22.yaml")
    yaml.pop("defaults")
    cfg = OmegaConf.merge(OmegaConf.structured(Cifar10WRNConf), yaml,
                          {"data_dir": str(tmp_path), "verify_md5": False, **overrides})
    return Cifar10WRN(cfg)


def offsets_seen(task: Cifar10WRN) -> tuple[set, set]:
    """Crop offsets (rows and columns) of 60 training epochs and 200 augmented TTA views."""
    gen = torch.Generator().manual_seed(0)
    train = [task.train_batches(e, gen).draws for e in range(60)]  # 20 images an epoch
    tta = [task.augmented_view(gen).draws for _ in range(200)]  # 6 test images a view
    return tuple(set(torch.cat([torch.cat([d.dy, d.dx]) for d in draws]).tolist()) for draws in (train, tta))


def test_cifar_crop_offsets_are_fastai_0_7s_0_to_7(tmp_path):
    # The blog: tfms_from_stats(stats, 32, aug_tfms=[RandomCrop(32), RandomFlip()], pad=32//8)
    # (Adam-experiments train_cifar10.py:29 @b1ede77). fastai/transforms.py @6768875: image_gen pads
    # to 40x40 (AddPadding, :678); RandomCrop.set_state draws U[0, 1) (:324-325) and crops at
    # floor(U * (40 - 32)) (:330-331), so offsets 0..7, never 8 (the second RandomCrop that
    # Transforms appends, :623-625, meets a 32x32 image: offset 0). TTA's augmented views are the
    # test images through the same training transforms (dataset.py:373 `aug`; learner.py:389-392).
    task = cifar_task(tmp_path)
    assert task.aug.pad == 4 and task.cfg.crop_offsets == "fastai" and task.cfg.identity == "preact"
    assert offsets_seen(task) == (set(range(8)), set(range(8)))
    symmetric = cifar_task(tmp_path / "sym", crop_offsets="symmetric")  # torchvision's RandomCrop law
    assert offsets_seen(symmetric) == (set(range(9)), set(range(9)))
    draws = draw_crop_flip(torch.arange(4000), CropFlip(pad=4), torch.Generator().manual_seed(0))
    assert set(torch.cat([draws.dy, draws.dx]).tolist()) == set(range(9))  # CropFlip's own default


def test_bad_identity_or_crop_offsets_is_one_clear_error(tmp_path):
    for key in ("identity", "crop_offsets", "bn_init"):
        with pytest.raises(UserError, match=f"task.{key} must be one of"):
            Cifar10WRN(OmegaConf.structured(Cifar10WRNConf(data_dir=str(tmp_path), **{key: "other"})))
    with pytest.raises(ValueError, match="offsets must be one of"):
        CropFlip(offsets="wide")
