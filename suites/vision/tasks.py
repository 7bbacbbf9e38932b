"""The two vision claims as engine tasks: `cifar10_wrn22` and `cars_resnet50`.

Both keep their data on the task's device as uint8 and augment per batch there (see resident.py and
side_on.py); toy-size keys (`subset`, `widen`, `arch`, `image_size`, ...) shrink the same classes and
loaders for tests, never a separate fake path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from results.errors import UserError

from ..base import DataNeed, Task, TaskConf, at_least, data_root, one_of, optional_at_least, probabilities
from ..splits import evaluation_split, metric_prefix
from .cars import LAYOUTS, load_cars
from .cifar import CIFAR10_MEAN, CIFAR10_STD, load_cifar10
from .cifar import FOLDER as CIFAR_FOLDER
from .paths import cache_root
from .resident import (OFFSET_MODES, PAD_MODES, CropFlip, ResidentImages, accuracy_and_loss, draw_crop_flip,
                       mean_probabilities, plain_draws)
from .resnet_head import hub_weights_path, torchvision_body_head
from .side_on import CachedImages, SideOn, ViewBatches, centre_view, draw_side_on
from .wrn import BN_INITS, IDENTITY_MODES, WideResNet

TTA_MODES = ("off", "flip", "fastai")
TTA_AUGMENTED = 4  # fastai 0.7 Learner.TTA(n_aug=4): the plain view averaged with 4 augmented ones
TTA_SEED = 20180702  # augmented TTA views are the same at every evaluation


def check_choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise UserError(f"task.{key} must be one of {list(choices)}, got {value!r}")


class ViewClassification(Task):
    """Evaluation shared by the vision tasks: accuracy/loss of the plain view and, with `tta`, of
    softmax probabilities averaged over the plain view and flipped (`flip`) or 4 train-augmented
    (`fastai`, as the blog's learn.TTA()) views. Named test_* on the test set, val_* on the held-out
    validation part (`split`, suites/splits.py)."""

    def __init__(self, tta: str, split: str = "test"):
        check_choice("tta", tta, TTA_MODES)
        self.tta, self.prefix = tta, metric_prefix(split)
        names = ("acc", "loss") + (("acc_tta", "loss_tta") if tta != "off" else ())
        self.metrics = tuple(f"{self.prefix}_{n}" for n in names)

    # Subclasses give the evaluated views (sized iterables of (x, y) in one fixed image order) and labels:
    # "test" is whichever part `evaluate` scores, the test set or the held-out validation part.
    def plain_view(self, flip: bool = False): raise NotImplementedError

    def augmented_view(self, generator: torch.Generator): raise NotImplementedError

    test_labels: torch.Tensor

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        probs = mean_probabilities(model, [self.plain_view()])
        acc, loss = accuracy_and_loss(probs, self.test_labels)
        out = {f"{self.prefix}_acc": acc, f"{self.prefix}_loss": loss}
        if self.tta == "off":
            return out
        if self.tta == "flip":
            extra = [self.plain_view(flip=True)]
        else:
            generator = torch.Generator().manual_seed(TTA_SEED)
            extra = [self.augmented_view(generator) for _ in range(TTA_AUGMENTED)]
        averaged = (probs + mean_probabilities(model, extra) * len(extra)) / (1 + len(extra))
        acc, loss = accuracy_and_loss(averaged, self.test_labels)
        out.update({f"{self.prefix}_acc_tta": acc, f"{self.prefix}_loss_tta": loss})
        return out


class ResidentCropFlipTask(ViewClassification):
    """Train/evaluated uint8 tensors resident on the device; crop/flip augmentation per batch."""

    def __init__(self, train: ResidentImages, test: ResidentImages, aug: CropFlip, batch_size: int,
                 eval_batch_size: int, tta: str, split: str = "test"):
        super().__init__(tta, split)
        self.train, self.test, self.aug = train, test, aug
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.test_labels = test.labels

    def train_batches(self, epoch: int, generator: torch.Generator):
        return self.train.train_epoch(self.batch_size, self.aug, generator)

    def plain_view(self, flip: bool = False):
        return self.test.batches(plain_draws(len(self.test), self.aug.pad, flip), self.eval_batch_size, self.aug)

    def augmented_view(self, generator: torch.Generator):
        draws = draw_crop_flip(torch.arange(len(self.test)), self.aug, generator)
        return self.test.batches(draws, self.eval_batch_size, self.aug)


@dataclass
class Cifar10WRNConf(TaskConf):
    data_dir: Optional[str] = None  # None: $ONECYCLE_DATA, else ./data
    verify_md5: bool = True
    subset: Optional[int] = None  # keep the first n images of each split (toy-size runs)
    batch_size: int = 128
    eval_batch_size: int = 1000
    pad: int = 4
    pad_mode: str = "reflect"
    crop_offsets: str = "fastai"  # fastai (0..2*pad-1, fastai 0.7's RandomCrop) | symmetric (0..2*pad)
    flip: bool = True
    tta: str = "off"  # off | flip | fastai
    identity: str = "preact"  # identity blocks add: preact (ReLU(BN(x)), fastai 0.7) | input (x)
    bn_init: str = "uniform"  # plain BNs' initial scale: uniform U(0,1) (PyTorch 0.4, the blog's) | ones
    groups: int = 3
    blocks_per_group: int = 3
    widen: int = 6
    start_width: int = 16
    drop: float = 0.0
    # Krizhevsky 2009, as torchvision's CIFAR10 reads it (cifar.py): 50,000 training, 10,000 test images.
    published_items: ClassVar[dict] = {"train": 50_000, "eval": 10_000, "unit": "image"}

    def problems(self) -> list[str]:
        return (super().problems() + optional_at_least(self, 1, "subset")
                + at_least(self, 1, "batch_size", "eval_batch_size", "groups", "blocks_per_group", "widen",
                           "start_width") + at_least(self, 0, "pad") + probabilities(self, "drop")
                + one_of(self, "pad_mode", PAD_MODES) + one_of(self, "crop_offsets", OFFSET_MODES)
                + one_of(self, "tta", TTA_MODES) + one_of(self, "identity", IDENTITY_MODES)
                + one_of(self, "bn_init", BN_INITS))

    def data_needs(self) -> list[DataNeed]:
        return [DataNeed("cifar10", data_root(self.data_dir) / CIFAR_FOLDER, self.verify_md5)]

    def fabricated(self, root: Path) -> dict:
        return {"data_dir": str(root), "verify_md5": False}  # fabricated batches cannot match the MD5s


class Cifar10WRN(ResidentCropFlipTask):
    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        check_choice("pad_mode", cfg.pad_mode, PAD_MODES)
        check_choice("crop_offsets", cfg.crop_offsets, OFFSET_MODES)
        check_choice("identity", cfg.identity, IDENTITY_MODES)
        check_choice("bn_init", cfg.bn_init, BN_INITS)
        x_tr, y_tr, x_te, y_te = load_cifar10(data_root(cfg.data_dir), cfg.verify_md5, cfg.subset)
        # split=validation: 45k / 5k, the last 5k of a permutation seeded 0 (suites/splits.py). The
        # published normalisation stays (its stats are of all 50k: two numbers per channel, no labels).
        (x_tr, y_tr), (x_te, y_te) = evaluation_split(cfg.split, (x_tr, y_tr), (x_te, y_te), stratified=False)
        super().__init__(ResidentImages(x_tr, y_tr, CIFAR10_MEAN, CIFAR10_STD, device),
                         ResidentImages(x_te, y_te, CIFAR10_MEAN, CIFAR10_STD, device),
                         CropFlip(cfg.pad, cfg.flip, cfg.pad_mode, cfg.crop_offsets), cfg.batch_size,
                         cfg.eval_batch_size, cfg.tta, cfg.split)

    def build_model(self) -> nn.Module:
        c = self.cfg
        return WideResNet(c.groups, c.blocks_per_group, c.widen, classes=10, start_width=c.start_width,
                          drop=c.drop, identity=c.identity, bn_init=c.bn_init)


@dataclass
class CarsResNet50Conf(TaskConf):
    data_dir: Optional[str] = None  # None: $ONECYCLE_DATA, else ./data
    layout: str = "auto"  # auto | torchvision | imagefolder | parquet (see suites/vision/cars.py)
    cache_dir: Optional[str] = None  # None: <$ONECYCLE_RESULTS or results>/cache
    cache_hw: List[int] = field(default_factory=lambda: [256, 384])  # decoded cache, H x W
    subset: Optional[int] = None  # keep the first n images of each split (toy-size runs)
    classes: int = 196
    image_size: int = 224
    max_zoom: float = 1.05
    max_rotate: float = 10.0
    lighting: float = 0.05
    flip: bool = True
    batch_size: int = 128
    eval_batch_size: int = 256
    tta: str = "off"  # off | flip | fastai
    arch: str = "resnet50"  # any torchvision ResNet (resnet18 for toy runs)
    pretrained: bool = True
    weights: str = "IMAGENET1K_V1"
    weights_path: Optional[str] = None  # None: <torch.hub.get_dir()>/checkpoints/<file>
    head_hidden: int = 512
    head_dropout: List[float] = field(default_factory=lambda: [0.25, 0.5])
    head_bn_init: str = "ones"  # the head's BatchNorm1d scales: ones | uniform U(0,1) (PyTorch 0.4, the blog's)
    # Krause et al. 2013 (suites/data/items.py StanfordCars.published): 8,144 training, 8,041 test images.
    published_items: ClassVar[dict] = {"train": 8_144, "eval": 8_041, "unit": "image"}

    def problems(self) -> list[str]:
        found = (super().problems() + optional_at_least(self, 1, "subset") + one_of(self, "layout", LAYOUTS)
                 + one_of(self, "tta", TTA_MODES) + probabilities(self, "head_dropout")
                 + one_of(self, "head_bn_init", BN_INITS)
                 + at_least(self, 1, "classes", "image_size", "batch_size", "eval_batch_size", "head_hidden",
                            "max_zoom")
                 + at_least(self, 0, "max_rotate", "lighting"))
        if len(self.cache_hw) != 2 or min(self.cache_hw) < 1:
            found.append(f"cache_hw must be 2 sizes >= 1 (height, width), got {list(self.cache_hw)}")
        return found

    def data_needs(self) -> list[DataNeed]:
        needs = [DataNeed("stanford_cars", data_root(self.data_dir) / "stanford_cars")]
        if self.pretrained:
            path = self.weights_path or hub_weights_path(self.arch, self.weights)
            needs.append(DataNeed(f"weights:{self.arch}/{self.weights}", Path(path).expanduser()))
        return needs

    def fabricated(self, root: Path) -> dict:
        """The weights under torchvision's own file name; the decoded cache beside the data, apart from
        the real one (its key is the files' names and sizes, not their content)."""
        return {"data_dir": str(root), "cache_dir": str(root / "cache"),
                "weights_path": str(root / "weights" / hub_weights_path(self.arch, self.weights).name)}


class CarsResNet50(ViewClassification):
    def __init__(self, cfg, device="cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        check_choice("layout", cfg.layout, LAYOUTS)
        super().__init__(cfg.tta, cfg.split)
        splits = load_cars(data_root(cfg.data_dir), cfg.layout, tuple(cfg.cache_hw), cache_root(cfg.cache_dir),
                           self.device, cfg.subset)
        # split=validation: a stratified 10% of the training half, seed 0 (suites/splits.py).
        train, test = evaluation_split(cfg.split, splits["train"], splits["test"], stratified=True)
        self.train, self.test = CachedImages(*train, self.device), CachedImages(*test, self.device)
        top = int(max(self.train.labels.max(), self.test.labels.max()))
        if top >= cfg.classes:
            raise UserError(f"Stanford Cars labels reach {top}, but task.classes={cfg.classes}")
        self.test_labels = self.test.labels
        self.aug = SideOn(cfg.image_size, cfg.max_zoom, max_rotate=cfg.max_rotate, lighting=cfg.lighting,
                          flip=cfg.flip)

    def build_model(self) -> nn.Module:
        c = self.cfg
        return torchvision_body_head(c.arch, c.classes, c.pretrained, c.weights, c.weights_path,
                                     c.head_hidden, tuple(c.head_dropout), c.head_bn_init)

    def train_batches(self, epoch: int, generator: torch.Generator):
        order = torch.randperm(len(self.train), generator=generator)
        return ViewBatches(self.train, order, draw_side_on(len(order), self.aug, generator),
                           self.cfg.batch_size, self.cfg.image_size)

    def plain_view(self, flip: bool = False):
        n = len(self.test)
        return ViewBatches(self.test, torch.arange(n), centre_view(n, flip), self.cfg.eval_batch_size,
                           self.cfg.image_size)

    def augmented_view(self, generator: torch.Generator):
        n = len(self.test)
        return ViewBatches(self.test, torch.arange(n), draw_side_on(n, self.aug, generator),
                           self.cfg.eval_batch_size, self.cfg.image_size)
