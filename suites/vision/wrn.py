"""Wide ResNet, pre-activation, as fastai 0.7's `wrn_22` (models/cifar10/wideresnet.py, the model
of the blog's train_cifar10.py) — our own code, the same network:

  conv3x3(in -> 16); `groups` groups of `blocks_per_group` blocks, widths 16*k, 32*k, 64*k, the first
  block of groups 2.. striding by 2; BN, ReLU, global average pool, linear.
  Block: a = ReLU(BN(x)); out = 0.2 * conv3x3(ReLU(BN(conv3x3(a)))) + shortcut, where shortcut is
  a 1x1 conv of `a` when the width or stride changes, else (`identity`):
    "preact" (default): `a` itself, as fastai 0.7 (BasicBlock.forward adds `self.shortcut(x2)`, x2 =
      relu(bn(x)), shortcut = noop when ni == nf: fastai/models/cifar10/wideresnet.py:30-38 @6768875);
    "input": x itself, the textbook pre-activation block (He et al. 2016; Zagoruyko & Komodakis 2016).
  (The 0.2 branch scale is fastai's DAWNBench-era choice; Zagoruyko & Komodakis' WRN has none.)

WRN-22 = 3 groups x 3 blocks x 2 convs + 4 (6N + 4, N = 3), k = 6: 9,658,458 parameters (either form).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(ni: int, nf: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, kernel, stride=stride, padding=kernel // 2, bias=False)


IDENTITY_MODES = ("preact", "input")  # what an identity block adds: ReLU(BN(x)) (fastai 0.7) or x
# Initial BatchNorm scale of the BNs fastai's WRN builds with a plain nn.BatchNorm2d (each block's
# first BN and the final one; the BN inside conv2 is fastai's bn(), set to 1): "uniform" U(0, 1), as
# PyTorch 0.4 (the blog's) `_BatchNorm.reset_parameters` drew it (`weight.data.uniform_()`; 1 since
# PyTorch 1.0), or "ones".
BN_INITS = ("uniform", "ones")


def check_identity(identity: str) -> None:
    if identity not in IDENTITY_MODES:
        raise ValueError(f"identity must be one of {IDENTITY_MODES}, got {identity!r}")


class PreActBlock(nn.Module):
    def __init__(self, ni: int, nf: int, stride: int, drop: float = 0.0, branch_scale: float = 0.2,
                 identity: str = "preact"):
        super().__init__()
        check_identity(identity)
        self.bn1 = nn.BatchNorm2d(ni)
        self.conv1 = conv(ni, nf, 3, stride)
        self.drop = nn.Dropout(drop) if drop else nn.Identity()
        self.bn2 = nn.BatchNorm2d(nf)
        self.conv2 = conv(nf, nf, 3)
        self.shortcut = conv(ni, nf, 1, stride) if (ni != nf or stride != 1) else None
        self.branch_scale = branch_scale
        self.identity = identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        if self.shortcut is not None:
            skip = self.shortcut(a)
        else:
            skip = a if self.identity == "preact" else x
        out = self.conv2(F.relu(self.bn2(self.drop(self.conv1(a)))))
        return skip + self.branch_scale * out


class WideResNet(nn.Module):
    """`groups` groups of `blocks_per_group` pre-activation blocks, widening factor `widen`;
    `identity` picks what identity blocks add (see the module docstring)."""

    def __init__(self, groups: int = 3, blocks_per_group: int = 3, widen: int = 6, classes: int = 10,
                 in_channels: int = 3, start_width: int = 16, drop: float = 0.0,
                 branch_scale: float = 0.2, identity: str = "preact", bn_init: str = "ones"):
        super().__init__()
        check_identity(identity)
        if bn_init not in BN_INITS:
            raise ValueError(f"bn_init must be one of {BN_INITS}, got {bn_init!r}")
        widths = [start_width] + [start_width * (2 ** i) * widen for i in range(groups)]
        layers: list[nn.Module] = [conv(in_channels, start_width, 3)]
        for g in range(groups):
            for b in range(blocks_per_group):
                ni = widths[g] if b == 0 else widths[g + 1]
                stride = 2 if (b == 0 and g > 0) else 1
                layers.append(PreActBlock(ni, widths[g + 1], stride, drop, branch_scale, identity))
        self.body = nn.Sequential(*layers)
        self.norm = nn.BatchNorm2d(widths[-1])
        self.head = nn.Linear(widths[-1], classes)
        if bn_init == "uniform":
            for bn in [*(block.bn1 for block in layers[1:]), self.norm]:
                nn.init.uniform_(bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.norm(self.body(x))).mean(dim=(2, 3))
        return self.head(features)


def wrn_22(classes: int = 10, identity: str = "preact", bn_init: str = "ones") -> WideResNet:
    return WideResNet(groups=3, blocks_per_group=3, widen=6, classes=classes, identity=identity,
                      bn_init=bn_init)
