"""fastai 0.7's Stanford Cars training augmentation as one batched affine resample on the device.

The blog's fit_stanford_cars.py: tfms_from_model(resnet50, 224, aug_tfms=transforms_side_on,
max_zoom=1.05), i.e. per image, in order:
  RandomScale   shorter side to int(224 * z), z ~ U(1, 1.05) with p 0.75, else 224
  RandomRotate  angle ~ U(-10, 10) degrees with p 0.75, about the centre, reflected border
  RandomLighting b, c ~ U(-0.05, 0.05); contrast c' = c + 1 (or 1 / (1 - c) when c < 0);
                x <- clip((x - mean) * c' + mean + b, 0, 1)
  RandomFlip    horizontal, p 0.5
  RandomCrop    224 x 224 at a uniform position; then ImageNet normalisation.
Validation: shorter side to 224, centre crop. Scale, rotation, flip and crop compose into one affine
map from output pixels to the cached image (which holds the whole image squished to a fixed size, so
the map also undoes the squish): one `affine_grid` + `grid_sample` per batch, no per-image Python.
(The lighting mean is taken over the crop, not over the whole rotated image as fastai did.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SideOn:
    size: int = 224
    max_zoom: float = 1.05
    zoom_p: float = 0.75
    max_rotate: float = 10.0  # degrees
    rotate_p: float = 0.75
    lighting: float = 0.05
    flip: bool = True


@dataclass(frozen=True)
class ViewParams:
    """Per-image random choices (CPU tensors of length n)."""

    zoom: torch.Tensor
    angle: torch.Tensor  # radians
    crop_u: torch.Tensor  # (n, 2): crop centre position in [0, 1] along x and y
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor

    def take(self, index: slice) -> "ViewParams":
        return ViewParams(*(t[index] for t in (self.zoom, self.angle, self.crop_u, self.flip,
                                                self.brightness, self.contrast)))


def draw_side_on(n: int, aug: SideOn, generator: torch.Generator) -> ViewParams:
    def uniform(low: float, high: float, size=(n,)) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    zoom = torch.where(torch.rand(n, generator=generator) < aug.zoom_p, uniform(1.0, aug.max_zoom), 1.0)
    # fastai: new size = int(mult * sz), so a zoom never grows the image by a fraction of a pixel.
    zoom = torch.floor(zoom * aug.size) / aug.size
    angle = torch.where(torch.rand(n, generator=generator) < aug.rotate_p,
                        uniform(-aug.max_rotate, aug.max_rotate), 0.0) * (math.pi / 180)
    flip = torch.rand(n, generator=generator) < 0.5 if aug.flip else torch.zeros(n, dtype=torch.bool)
    c = uniform(-aug.lighting, aug.lighting)
    contrast = torch.where(c < 0, -1 / (c - 1), c + 1)
    return ViewParams(zoom, angle, torch.rand((n, 2), generator=generator), flip,
                      uniform(-aug.lighting, aug.lighting), contrast)


def centre_view(n: int, flip: bool = False) -> ViewParams:
    """Validation transform: shorter side to size, centre crop (optionally flipped, for TTA)."""
    zeros = torch.zeros(n)
    return ViewParams(torch.ones(n), zeros, torch.full((n, 2), 0.5), torch.full((n,), flip),
                      zeros.clone(), torch.ones(n))


def affine_thetas(aspect: torch.Tensor, view: ViewParams, size: int) -> torch.Tensor:
    """(n, 2, 3) maps from output coordinates in [-1, 1] to the squished cached image's [-1, 1].

    In the scaled image's pixel frame (origin at its centre) an output point q is
    P = c + (size / 2) * (±q_x, q_y); rotated, P' = R P; in the cache, g = P' / (w' / 2, h' / 2)."""
    short = size * view.zoom
    h = short / torch.clamp(aspect, max=1.0)  # the scaled image's height and width, in pixels
    w = h * aspect
    centre = torch.stack([(view.crop_u[:, 0] - 0.5) * (w - size).clamp(min=0),
                          (view.crop_u[:, 1] - 0.5) * (h - size).clamp(min=0)], dim=1)
    cos, sin = torch.cos(view.angle), torch.sin(view.angle)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    sign = torch.where(view.flip, -1.0, 1.0)
    linear = rot * (size / 2) * torch.stack([sign, torch.ones_like(sign)], 1)[:, None, :]
    shift = (rot @ centre[:, :, None])[:, :, 0]
    half = torch.stack([w / 2, h / 2], 1)[:, :, None]
    return torch.cat([linear, shift[:, :, None]], dim=2) / half


def render(cached: torch.Tensor, aspect: torch.Tensor, view: ViewParams, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) cached images -> normalised float (B, 3, size, size), channels_last."""
    device = cached.device
    x = cached.permute(0, 3, 1, 2).float().div_(255)
    theta = affine_thetas(aspect.cpu(), view, size).to(device)
    grid = F.affine_grid(theta, [len(x), 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if bool((view.brightness != 0).any() or (view.contrast != 1).any()):  # CPU check: no device sync
        brightness, contrast = view.brightness.to(device), view.contrast.to(device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]).clamp_(0, 1)
    mean_t = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std_t = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


class CachedImages:
    """The decoded cache of one split on the device: images, labels, aspect ratios."""

    def __init__(self, images, labels, aspect, device: torch.device):
        # np.array: the cache is a read-only memmap; copy it into memory once, then to the device.
        self.images = torch.from_numpy(np.array(images)).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        self.aspect = torch.as_tensor(aspect, dtype=torch.float32)  # stays on the CPU with the draws

    def __len__(self) -> int:
        return len(self.labels)


class ViewBatches:
    """Sized iterable of (input, label) batches of `data[order]` rendered with `view`."""

    def __init__(self, data: CachedImages, order: torch.Tensor, view: ViewParams, batch_size: int,
                 size: int):
        self.data, self.order, self.view, self.batch_size, self.size = data, order, view, batch_size, size

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self):
        device = self.data.images.device
        for start in range(0, len(self.order), self.batch_size):
            part = slice(start, start + self.batch_size)
            index = self.order[part]
            on_device = index.to(device, non_blocking=True)
            x = render(self.data.images[on_device], self.data.aspect[index], self.view.take(part), self.size)
            yield x, self.data.labels[on_device]
