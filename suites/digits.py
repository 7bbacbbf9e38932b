"""`digits_resnet`: a small ResNet on scikit-learn's bundled handwritten digits (real data, no download).

1,797 8x8 grey images, 10 classes. Split: stratified, `split_seed` 0, 500 test / 1,297 train — fixed,
so every run of every machine sees the same split (task.split=validation: a stratified 130 of the 1,297
held out instead of the test set, suites/splits.py). Data and augmentation are the vision claims' shared
resident loader (vision/resident.py): uint8 images on the device, normalised with the training images'
mean/std, and a random shift of up to 1 pixel either way (pad with zeros and crop; flips would turn
digits into other symbols). The digits twins (vision/digits_twins.py) build on the same pieces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import TaskConf, at_least
from .splits import evaluation_split
from .vision.resident import CropFlip, ResidentImages
from .vision.tasks import ResidentCropFlipTask


@dataclass
class DigitsResNetConf(TaskConf):
    batch_size: int = 64
    width: int = 32
    blocks: int = 2
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1  # max random translation in pixels

    def problems(self) -> list[str]:
        return (super().problems() + digits_split_problems(self) + at_least(self, 1, "width")
                + at_least(self, 0, "blocks"))


DIGITS, DIGIT_CLASSES = 1797, 10  # scikit-learn's digits


def digits_split_problems(conf) -> list[str]:
    """Checks shared by the digits tasks: a stratified split needs a digit of each class on either side."""
    found = at_least(conf, 1, "batch_size") + at_least(conf, 0, "shift", "split_seed")
    if not DIGIT_CLASSES <= conf.test_size <= DIGITS - DIGIT_CLASSES:
        found.append(f"test_size must be in [{DIGIT_CLASSES}, {DIGITS - DIGIT_CLASSES}] (a stratified split "
                     f"of {DIGITS} digits), got {conf.test_size}")
    return found


def digit_classes_problems(name: str, classes) -> list[str]:
    if len(set(classes)) != len(classes) or len(classes) < 2 or not set(classes) <= set(range(DIGIT_CLASSES)):
        return [f"{name} must be 2 or more distinct digits 0-9, got {list(classes)}"]
    return []


def load_digits_split(test_size: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as float32 in [0, 1] and int64, stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]  # N, 1, 8, 8
    x_tr, x_te, y_tr, y_te = train_test_split(images, data.target.astype(np.int64), test_size=test_size,
                                              stratify=data.target, random_state=split_seed)
    return x_tr, y_tr, x_te, y_te


def digits_eval_split(split: str, test_size: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_eval, y_eval, x_all): the evaluated part is the test split, or with
    split=validation a stratified 10% of the training part (seed 0, suites/splits.py). `x_all`, the
    whole training part, gives the normalisation either way (two numbers, no labels), so pre-training
    and fine-tuning share it and split=test stays as it was."""
    x_all, y_all, x_te, y_te = load_digits_split(test_size, split_seed)
    (x_tr, y_tr), (x_ev, y_ev) = evaluation_split(split, (x_all, y_all), (x_te, y_te), stratified=True)
    return x_tr, y_tr, x_ev, y_ev, x_all


def digits_uint8(images: np.ndarray) -> np.ndarray:
    """float (N, 1, 8, 8) in [0, 1] -> uint8 (N, 8, 8, 1), the resident loader's layout."""
    return np.round(images * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def digits_resident(x: np.ndarray, y: np.ndarray, stats_from: np.ndarray, device) -> ResidentImages:
    """Normalised with the mean/std of `stats_from` (the training images)."""
    return ResidentImages(digits_uint8(x), y, [float(stats_from.mean())], [float(stats_from.std())], device)


def digits_shift(shift: int) -> CropFlip:
    """A random translation of up to `shift` pixels either way, the background (0) filling in."""
    return CropFlip(shift, flip=False, pad_mode="zeros")


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


class DigitsResNet(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        x_tr, y_tr, x_ev, y_ev, x_all = digits_eval_split(cfg.split, cfg.test_size, cfg.split_seed)
        # The 500 test images are one evaluation batch; no TTA (digits_wrn has the option).
        super().__init__(digits_resident(x_tr, y_tr, x_all, device), digits_resident(x_ev, y_ev, x_all, device),
                         digits_shift(cfg.shift), cfg.batch_size, eval_batch_size=cfg.test_size, tta="off",
                         split=cfg.split)

    def build_model(self) -> nn.Module:
        return SmallResNet(width=self.cfg.width, blocks=self.cfg.blocks)
