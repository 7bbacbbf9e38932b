"""CPU-sized twins of the vision claims on scikit-learn's bundled digits (real data, no download).

`digits_wrn`: the CIFAR recipe's shape — a small pre-activation Wide ResNet (wrn.py) trained from the
same resident uint8 loader as cifar10_wrn22, with the augmentation that fits digits: a random shift of
up to 1 pixel (pad 1 with zeros and crop; flips would turn digits into other symbols).

`digits_finetune`: the Cars recipe's shape — a small ResNet pre-trained on digits 0-4 by an ordinary
run of the task `digits_pretrain` (its `pretrain` block: task, optimizer, schedule, seed; the runner
trains or finds that run and hands over its final checkpoint as `pretrained_path`), then fine-tuned on
5-9 with the same model wrapper (BodyHead: early / late / head groups, fastai head), the same frozen-BN
rule and the same `task.stages` (head only with the body frozen, then all with per-group LRs) as
cars_resnet50.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np
import torch
from omegaconf import MISSING
from torch import nn

from results.errors import UserError

from ..base import TaskConf, at_least, one_of, probabilities
from ..digits import (SmallResNet, digit_classes_problems, digits_eval_split, digits_resident, digits_shift,
                      digits_split_problems)
from .resident import ResidentImages
from .resnet_head import BodyHead, fastai_head
from .tasks import TTA_MODES, ResidentCropFlipTask
from .wrn import WideResNet


@dataclass
class DigitsWRNConf(TaskConf):
    batch_size: int = 64
    eval_batch_size: int = 500
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1  # pad with zeros and crop back: a random translation of up to `shift` pixels
    tta: str = "off"
    groups: int = 2
    blocks_per_group: int = 1
    widen: int = 2
    start_width: int = 16

    def problems(self) -> list[str]:
        return (super().problems() + digits_split_problems(self) + one_of(self, "tta", TTA_MODES)
                + at_least(self, 1, "eval_batch_size", "groups", "blocks_per_group", "widen", "start_width"))


class DigitsWRN(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        x_tr, y_tr, x_ev, y_ev, x_all = digits_eval_split(cfg.split, cfg.test_size, cfg.split_seed)
        super().__init__(digits_resident(x_tr, y_tr, x_all, device), digits_resident(x_ev, y_ev, x_all, device),
                         digits_shift(cfg.shift), cfg.batch_size, cfg.eval_batch_size, cfg.tta, cfg.split)

    def build_model(self) -> nn.Module:
        c = self.cfg
        return WideResNet(c.groups, c.blocks_per_group, c.widen, classes=10, in_channels=1,
                          start_width=c.start_width)


def select_classes(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """The images of `classes`, labels renumbered 0..len(classes)-1 in that order."""
    keep = np.isin(y, classes)
    lookup = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([lookup[int(v)] for v in y[keep]], dtype=np.int64)


def class_subset(cfg, classes, device) -> tuple[ResidentImages, ResidentImages]:
    """Train and evaluated images of `classes`, normalised with the statistics of all training digits, so
    pre-training and fine-tuning see one normalisation (as Cars uses ImageNet's). With split=validation
    the held-out part is cut from all ten digits before the classes are taken: stratified, so each class
    keeps its 10%."""
    x_tr, y_tr, x_ev, y_ev, x_all = digits_eval_split(cfg.split, cfg.test_size, cfg.split_seed)
    x_tr, y_tr = select_classes(x_tr, y_tr, list(classes))
    x_ev, y_ev = select_classes(x_ev, y_ev, list(classes))
    return digits_resident(x_tr, y_tr, x_all, device), digits_resident(x_ev, y_ev, x_all, device)


@dataclass
class DigitsPretrainConf(TaskConf):
    batch_size: int = 64
    eval_batch_size: int = 500
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1
    classes: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    width: int = 32
    blocks: int = 2

    def problems(self) -> list[str]:
        return (super().problems() + digits_split_problems(self)
                + digit_classes_problems("classes", self.classes)
                + at_least(self, 1, "eval_batch_size", "width") + at_least(self, 0, "blocks"))


class DigitsPretrain(ResidentCropFlipTask):
    """SmallResNet on a subset of the digits: digits_finetune's ImageNet."""

    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        super().__init__(*class_subset(cfg, cfg.classes, device), digits_shift(cfg.shift), cfg.batch_size,
                         cfg.eval_batch_size, "off", cfg.split)

    def build_model(self) -> nn.Module:
        return SmallResNet(self.cfg.width, self.cfg.blocks, classes=len(self.cfg.classes))


@dataclass
class PretrainConf:
    """The run a task's starting weights come from: an ordinary run of `task` for its budget, with this
    optimizer, schedule and seed. runners/run.py trains it (or finds it, by its run id) before building
    the task, and sets the task's `pretrained_path` to that run's final checkpoint."""

    task: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    seed: int = 0


@dataclass
class DigitsFinetuneConf(TaskConf):
    batch_size: int = 64
    eval_batch_size: int = 500
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1
    tta: str = "off"
    finetune_classes: List[int] = field(default_factory=lambda: [5, 6, 7, 8, 9])
    width: int = 32  # the pre-trained SmallResNet's
    blocks: int = 2  # the body: stem + blocks; `early` = stem + first block, `late` = the rest
    pretrain: Optional[PretrainConf] = None
    # A run's checkpoint.pt (its `model` entry). Set by the runner from `pretrain`; with pretrain=null,
    # give one yourself.
    pretrained_path: Optional[str] = None
    head_hidden: int = 64
    head_dropout: List[float] = field(default_factory=lambda: [0.25, 0.5])

    def problems(self) -> list[str]:
        found = (super().problems() + digits_split_problems(self) + one_of(self, "tta", TTA_MODES)
                 + digit_classes_problems("finetune_classes", self.finetune_classes)
                 + at_least(self, 1, "eval_batch_size", "width", "blocks", "head_hidden")
                 + probabilities(self, "head_dropout"))
        if self.pretrain is not None:  # the pre-training run is trained first: refuse it before that too
            found += at_least(self.pretrain, 0, "seed", prefix="pretrain.")
            if hasattr(self.pretrain.task, "problems"):
                found += [f"pretrain.task.{p}" for p in self.pretrain.task.problems()]
        return found


class DigitsFinetune(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        if not cfg.pretrained_path:
            raise UserError("task.pretrained_path is not set: digits_finetune starts from the weights of its "
                            "task.pretrain run, which `python -m runners.train` trains or finds first")
        self.pretrained = torch.load(cfg.pretrained_path, map_location="cpu", weights_only=True)["model"]
        super().__init__(*class_subset(cfg, cfg.finetune_classes, device), digits_shift(cfg.shift),
                         cfg.batch_size, cfg.eval_batch_size, cfg.tta, cfg.split)

    def build_model(self) -> nn.Module:
        c = self.cfg
        net = SmallResNet(c.width, c.blocks, classes=self.pretrained["head.weight"].shape[0])
        net.load_state_dict(self.pretrained)
        return BodyHead(nn.Sequential(net.stem, net.blocks[:1]), net.blocks[1:],
                        fastai_head(c.width, len(c.finetune_classes), c.head_hidden, tuple(c.head_dropout)))
