"""A whole image dataset resident on the device as uint8 (N, H, W, C), augmented per batch there.

Why: for a CIFAR-sized model a GPU waits on DataLoader workers and host copies, not on pixels
(airbench and Myrtle's ResNet-9 keep the data on the GPU for this reason). Each batch is one gather
from the uint8 store — random crop with padding and horizontal flip are just index arithmetic — then
one fused normalise. The random draws for a whole epoch are made up front on the CPU from the
engine's (seed, epoch) generator, so the CPU and CUDA paths see identical crops and flips, and a
resumed run sees the same batches. The same code runs on CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

PAD_MODES = ("reflect", "zeros")
OFFSET_MODES = ("symmetric", "fastai")


@dataclass(frozen=True)
class CropFlip:
    """Random crop of the image's own size from the image padded by `pad`, and a flip with p 0.5.
    `reflect` is OpenCV's BORDER_REFLECT (edge pixel repeated: fastai 0.7's default pad mode, as
    torchvision's padding_mode='symmetric'); `zeros` pads with black.
    `offsets`: `symmetric` draws each crop offset from 0..2*pad (torchvision RandomCrop); `fastai`
    from 0..2*pad-1, as fastai 0.7's RandomCrop, floor(U[0, 1) * 2*pad) (transforms.py:324-331
    @6768875) — a shift of up to pad pixels one way, pad-1 the other."""

    pad: int = 4
    flip: bool = True
    pad_mode: str = "reflect"
    offsets: str = "symmetric"

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.offsets not in OFFSET_MODES:
            raise ValueError(f"offsets must be one of {OFFSET_MODES}, got {self.offsets!r}")

    @property
    def offset_count(self) -> int:
        """How many crop offsets there are per axis (0..offset_count-1)."""
        return max(2 * self.pad, 1) if self.offsets == "fastai" else 2 * self.pad + 1


@dataclass(frozen=True)
class Draws:
    """One epoch's (or one TTA pass's) random choices, one entry per image in `order`."""

    order: torch.Tensor  # image indices, in batch order
    dy: torch.Tensor  # crop offsets in [0, 2 * pad] (0..2*pad-1 for CropFlip.offsets="fastai")
    dx: torch.Tensor
    flip: torch.Tensor  # bool

    def to(self, device: torch.device) -> "Draws":
        return Draws(*(t.to(device, non_blocking=True) for t in (self.order, self.dy, self.dx, self.flip)))


def draw_crop_flip(order: torch.Tensor, aug: CropFlip, generator: torch.Generator) -> Draws:
    """Offsets and flips for every image in `order`, from `generator` (a CPU generator)."""
    n = len(order)
    dy = torch.randint(0, aug.offset_count, (n,), generator=generator)
    dx = torch.randint(0, aug.offset_count, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return Draws(order, dy, dx, flip if aug.flip else torch.zeros(n, dtype=torch.bool))


def plain_draws(n: int, pad: int, flip: bool = False) -> Draws:
    """The un-augmented view (centre crop of the padded image), optionally flipped — for evaluation."""
    full = torch.full((n,), pad, dtype=torch.long)
    return Draws(torch.arange(n), full, full.clone(), torch.full((n,), flip, dtype=torch.bool))


def source_index(coords: torch.Tensor, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Coordinates of the padded frame (may fall outside [0, size)) mapped into the image; for
    `zeros` also the mask of those that were inside."""
    if mode == "reflect":
        coords = torch.where(coords < 0, -coords - 1, coords)
        return torch.where(coords >= size, 2 * size - coords - 1, coords), None
    return coords.clamp(0, size - 1), (coords >= 0) & (coords < size)


def gather_crops(images: torch.Tensor, draws: Draws, pad: int, pad_mode: str) -> torch.Tensor:
    """uint8 (B, H, W, C) crops of `images[draws.order]`: one advanced-indexing gather."""
    _, h, w, _ = images.shape
    rows = draws.dy[:, None] - pad + torch.arange(h, device=images.device)
    cols_fwd = torch.arange(w, device=images.device).expand(len(draws.order), w)
    cols = draws.dx[:, None] - pad + torch.where(draws.flip[:, None], w - 1 - cols_fwd, cols_fwd)
    rows, row_ok = source_index(rows, h, pad_mode)
    cols, col_ok = source_index(cols, w, pad_mode)
    out = images[draws.order[:, None, None], rows[:, :, None], cols[:, None, :]]
    if row_ok is not None:
        out = out * (row_ok[:, :, None] & col_ok[:, None, :])[..., None].to(out.dtype)
    return out


class ResidentImages:
    """uint8 images (N, H, W, C) and int64 labels on `device`, with per-channel normalisation."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels, mean: Sequence[float],
                 std: Sequence[float], device: torch.device | str):
        self.device = torch.device(device)
        self.images = torch.as_tensor(images).to(self.device)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"expected uint8 (N, H, W, C) images, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device)
        # x / 255 normalised = x * scale + shift, per channel: one fused multiply-add per batch.
        self.scale = (1.0 / (255.0 * std_t))[:, None, None]
        self.shift = (-torch.tensor(mean, dtype=torch.float32, device=self.device) / std_t)[:, None, None]

    def __len__(self) -> int:
        return len(self.labels)

    def to_input(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, C) -> normalised float (B, C, H, W), channels_last in memory (a free
        permute of the gathered layout, and the layout fast convolutions want)."""
        return torch.addcmul(self.shift, crops.permute(0, 3, 1, 2).float(), self.scale)

    def batches(self, draws: Draws, batch_size: int, aug: CropFlip) -> "Batches":
        return Batches(self, draws.to(self.device), batch_size, aug)

    def train_epoch(self, batch_size: int, aug: CropFlip, generator: torch.Generator) -> "Batches":
        """Every image once, in a random order, randomly cropped and flipped."""
        order = torch.randperm(len(self), generator=generator)
        return self.batches(draw_crop_flip(order, aug, generator), batch_size, aug)


class Batches:
    """A sized iterable of (input, label) batches built lazily on the device."""

    def __init__(self, data: ResidentImages, draws: Draws, batch_size: int, aug: CropFlip):
        self.data, self.draws, self.batch_size, self.aug = data, draws, batch_size, aug

    def __len__(self) -> int:
        return math.ceil(len(self.draws.order) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d = self.draws
        for start in range(0, len(d.order), self.batch_size):
            part = Draws(*(t[start:start + self.batch_size] for t in (d.order, d.dy, d.dx, d.flip)))
            crops = gather_crops(self.data.images, part, self.aug.pad, self.aug.pad_mode)
            yield self.data.to_input(crops), self.data.labels[part.order]


def mean_probabilities(model, views) -> torch.Tensor:
    """Softmax probabilities averaged over views (each a Batches over the same image order)."""
    total = None
    for view in views:
        probs = torch.cat([F.softmax(model(x).float(), dim=1) for x, _ in view])
        total = probs if total is None else total + probs
    return total / len(views)


def accuracy_and_loss(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy of the arg-max and the NLL of (possibly averaged) probabilities."""
    acc = (probs.argmax(1) == labels).float().mean().item()
    return acc, F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
