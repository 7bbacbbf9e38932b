"""`digits_resnet`: a small ResNet on scikit-learn's bundled handwritten digits (real data, no download).

1,797 8x8 grey images, 10 classes. Split: stratified, `split_seed` 0, 500 test / 1,297 train — fixed,
so every run of every machine sees the same split. Augmentation: random shift of up to 1 pixel (pad
and crop; flips would turn digits into other symbols).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runners.config import TaskConf

from .base import Task


@dataclass
class DigitsResNetConf(TaskConf):
    batch_size: int = 64
    width: int = 32
    blocks: int = 2
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1  # max random translation in pixels


def load_digits_split(test_size: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as float32 in [0, 1] and int64, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]  # N, 1, 8, 8
    x_tr, x_te, y_tr, y_te = train_test_split(images, data.target.astype(np.int64), test_size=test_size,
                                              stratify=data.target, random_state=split_seed)
    return x_tr, y_tr, x_te, y_te


class BasicBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class SmallResNet(nn.Module):
    """Stem, `blocks` residual blocks, global average pool, linear head."""

    def __init__(self, width: int = 32, blocks: int = 2, classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[BasicBlock(width) for _ in range(blocks)])
        self.head = nn.Linear(width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"body": [*self.stem.parameters(), *self.blocks.parameters()],
                "head": list(self.head.parameters())}


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels (zero fill), drawn from `generator`."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


class ImageClassification(Task):
    """Shared by the digits tasks: tensors resident on the device, shuffled and augmented per epoch."""

    metrics = ("test_acc", "test_loss")

    def __init__(self, x_train, y_train, x_test, y_test, batch_size: int, shift: int, device):
        self.device = torch.device(device)
        self.x_train, self.y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
        self.x_test = torch.as_tensor(x_test).to(self.device)
        self.y_test = torch.as_tensor(y_test).to(self.device)
        self.batch_size, self.shift = batch_size, shift

    def train_batches(self, epoch: int, generator: torch.Generator) -> list:
        order = torch.randperm(len(self.x_train), generator=generator)
        x = random_shift(self.x_train[order], self.shift, generator)
        y = self.y_train[order]
        return [(x[i:i + self.batch_size].to(self.device), y[i:i + self.batch_size].to(self.device))
                for i in range(0, len(x), self.batch_size)]

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        logits = model(self.x_test).float()
        return {"test_acc": (logits.argmax(1) == self.y_test).float().mean().item(),
                "test_loss": F.cross_entropy(logits, self.y_test).item()}


class DigitsResNet(ImageClassification):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        super().__init__(*load_digits_split(cfg.test_size, cfg.split_seed), batch_size=cfg.batch_size,
                         shift=cfg.shift, device=device)

    def build_model(self) -> nn.Module:
        return SmallResNet(width=self.cfg.width, blocks=self.cfg.blocks)
