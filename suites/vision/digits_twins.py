"""CPU-sized twins of the vision claims on scikit-learn's bundled digits (real data, no download).

`digits_wrn`: the CIFAR recipe's shape — a small pre-activation Wide ResNet (wrn.py) trained from the
same resident uint8 loader as cifar10_wrn22, with the augmentation that fits digits: a random shift of
up to 1 pixel (pad 1 with zeros and crop; flips would turn digits into other symbols).

`digits_finetune`: the Cars recipe's shape — a small ResNet pre-trained by the suite itself on digits
0-4 (cached once under <cache>/digits_finetune/, keyed by its config hash, seeded), then fine-tuned on
5-9 with the same model wrapper (BodyHead: early / late / head groups, fastai head), the same frozen-BN
rule and the same `task.stages` (head only with the body frozen, then all with per-group LRs) as
cars_resnet50.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runners.config import TaskConf
from runners.schedules import one_cycle

from ..digits import SmallResNet, load_digits_split
from .paths import cache_root, config_hash
from .resident import CropFlip, ResidentImages
from .resnet_head import BodyHead, fastai_head
from .tasks import ResidentCropFlipTask
from .wrn import WideResNet


def digits_uint8(images: np.ndarray) -> np.ndarray:
    """float (N, 1, 8, 8) in [0, 1] -> uint8 (N, 8, 8, 1), the resident loader's layout."""
    return np.round(images * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def digits_resident(x: np.ndarray, y: np.ndarray, stats_from: np.ndarray, device) -> ResidentImages:
    """Normalised with the mean/std of `stats_from` (the training images)."""
    return ResidentImages(digits_uint8(x), y, [float(stats_from.mean())], [float(stats_from.std())], device)


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


class DigitsWRN(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        x_tr, y_tr, x_te, y_te = load_digits_split(cfg.test_size, cfg.split_seed)
        super().__init__(digits_resident(x_tr, y_tr, x_tr, device), digits_resident(x_te, y_te, x_tr, device),
                         CropFlip(cfg.shift, flip=False, pad_mode="zeros"), cfg.batch_size,
                         cfg.eval_batch_size, cfg.tta)

    def build_model(self) -> nn.Module:
        c = self.cfg
        return WideResNet(c.groups, c.blocks_per_group, c.widen, classes=10, in_channels=1,
                          start_width=c.start_width)


@dataclass
class DigitsFinetuneConf(TaskConf):
    batch_size: int = 64
    eval_batch_size: int = 500
    test_size: int = 500
    split_seed: int = 0
    shift: int = 1
    tta: str = "off"
    pretrain_classes: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    finetune_classes: List[int] = field(default_factory=lambda: [5, 6, 7, 8, 9])
    width: int = 32
    blocks: int = 2  # the body: stem + blocks; `early` = stem + first block, `late` = the rest
    pretrain_epochs: int = 6
    pretrain_lr: float = 3e-3
    pretrain_seed: int = 0
    pretrain_batch_size: int = 64
    cache_dir: Optional[str] = None  # None: <$ONECYCLE_RESULTS or results>/cache
    head_hidden: int = 64
    head_dropout: List[float] = field(default_factory=lambda: [0.25, 0.5])


def select_classes(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """The images of `classes`, labels renumbered 0..len(classes)-1 in that order."""
    keep = np.isin(y, classes)
    lookup = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([lookup[int(v)] for v in y[keep]], dtype=np.int64)


def pretrain_spec(cfg) -> dict:
    keys = ("test_size", "split_seed", "shift", "pretrain_classes", "width", "blocks", "pretrain_epochs",
            "pretrain_lr", "pretrain_seed", "pretrain_batch_size")
    return {k: (list(cfg[k]) if k == "pretrain_classes" else cfg[k]) for k in keys}


def pretrain(cfg) -> dict:
    """Train SmallResNet on the pretraining classes (CPU, Adam + fastai one_cycle, seeded, with the
    global RNG untouched); returns its state dict."""
    x_tr, y_tr, _, _ = load_digits_split(cfg.test_size, cfg.split_seed)
    x, y = select_classes(x_tr, y_tr, list(cfg.pretrain_classes))
    data, aug = digits_resident(x, y, x_tr, "cpu"), CropFlip(cfg.shift, flip=False, pad_mode="zeros")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.pretrain_seed)
        generator = torch.Generator().manual_seed(cfg.pretrain_seed)
        model = SmallResNet(cfg.width, cfg.blocks, classes=len(cfg.pretrain_classes))
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.pretrain_lr, betas=(0.95, 0.99))
        schedule = one_cycle()
        for epoch in range(cfg.pretrain_epochs):
            batches = data.train_epoch(cfg.pretrain_batch_size, aug, generator)
            for i, (xb, yb) in enumerate(batches):
                lr_mult, mom = schedule((epoch + i / len(batches)) / cfg.pretrain_epochs)
                for group in optimizer.param_groups:
                    group["lr"], group["betas"] = cfg.pretrain_lr * lr_mult, (mom, 0.99)
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
    return model.state_dict()


def pretrained_state(cfg) -> dict:
    """The pretrained SmallResNet, trained once per config and cached (atomic write)."""
    path = cache_root(cfg.cache_dir) / "digits_finetune" / f"pretrain-{config_hash(pretrain_spec(cfg))}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    state = pretrain(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return state


class DigitsFinetune(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        self.pretrained = pretrained_state(cfg)
        x_all, y_all, x_te, y_te = load_digits_split(cfg.test_size, cfg.split_seed)
        x_tr, y_tr = select_classes(x_all, y_all, list(cfg.finetune_classes))
        x_te, y_te = select_classes(x_te, y_te, list(cfg.finetune_classes))
        # Normalised as in pretraining (all training digits' statistics), as Cars uses ImageNet's.
        super().__init__(digits_resident(x_tr, y_tr, x_all, device), digits_resident(x_te, y_te, x_all, device),
                         CropFlip(cfg.shift, flip=False, pad_mode="zeros"), cfg.batch_size,
                         cfg.eval_batch_size, cfg.tta)

    def build_model(self) -> nn.Module:
        c = self.cfg
        net = SmallResNet(c.width, c.blocks, classes=len(c.pretrain_classes))
        net.load_state_dict(self.pretrained)
        return BodyHead(nn.Sequential(net.stem, net.blocks[:1]), net.blocks[1:],
                        fastai_head(c.width, len(c.finetune_classes), c.head_hidden, tuple(c.head_dropout)))
