"""Fine-tuning models: a (pretrained) body split in two parameter groups plus fastai 0.7's head.

Groups, as fastai 0.7's ConvLearner for ResNets (model_meta cut 8, lr_cut 6): `early` = the body's
first six children (conv1, bn1, relu, maxpool, layer1, layer2), `late` = layer3 and layer4, `head`.
The blog's stage 2 gives them LRs (lr/9, lr/3, lr).

Head (fastai 0.7 ConvLearner.pretrained defaults xtra_fc=[512], ps=[0.25, 0.5]): concat of adaptive
max and average pooling -> BN -> Dropout(0.25) -> Linear(2C, 512) -> ReLU -> BN -> Dropout(0.5) ->
Linear(512, classes), linear weights Kaiming-normal. The head's BatchNorm1d scales start at 1 (PyTorch
now), or, `bn_init="uniform"`, U(0, 1) as PyTorch 0.4 initialised them when fastai 0.7 built this head
(`_BatchNorm.reset_parameters`: `self.weight.data.uniform_()` in torch 0.4; fastai 0.7 left them alone,
as for the WRN, suites/vision/wrn.py) — the blog's recipe (+recipe=cars_blog).

Weights: torchvision's weights API. `ResNet50_Weights.IMAGENET1K_V1` (resnet50-0676ba61.pth) are
the original torchvision weights (76.13% top-1), those fastai 0.7 loaded in 2018; IMAGENET1K_V2
(80.86%) came in 2021.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from results.errors import DatasetMissing, UserError

from .wrn import BN_INITS

GROUPS = ("early", "late", "head")


class ConcatPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)


def fastai_head(channels: int, classes: int, hidden: int = 512,
                dropout: tuple[float, float] = (0.25, 0.5), bn_init: str = "ones") -> nn.Sequential:
    if bn_init not in BN_INITS:
        raise ValueError(f"bn_init must be one of {BN_INITS}, got {bn_init!r}")
    head = nn.Sequential(ConcatPool(), nn.BatchNorm1d(2 * channels), nn.Dropout(dropout[0]),
                         nn.Linear(2 * channels, hidden), nn.ReLU(), nn.BatchNorm1d(hidden),
                         nn.Dropout(dropout[1]), nn.Linear(hidden, classes))
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d) and bn_init == "uniform":
            nn.init.uniform_(layer.weight)
    return head


class BodyHead(nn.Module):
    """early -> late -> head, with named parameter groups for freezing and per-group LRs."""

    def __init__(self, early: nn.Module, late: nn.Module, head: nn.Module):
        super().__init__()
        self.early, self.late, self.head = early, late, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.late(self.early(x)))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: list(getattr(self, name).parameters()) for name in GROUPS}


def weights_enum(arch: str, weights: str):
    try:
        return torchvision.models.get_model_weights(arch)[weights]
    except (KeyError, ValueError) as exc:
        raise UserError(f"unknown weights {arch}/{weights}: {exc}") from None


def hub_weights_path(arch: str, weights: str) -> Path:
    """Where torch.hub keeps (and we look for) the weights file: <hub dir>/checkpoints/<file>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum(arch, weights).url).name


def load_pretrained_state(arch: str, weights: str, weights_path: str | None) -> dict:
    """The state dict from `weights_path`, else torch.hub's cache; disk only (`make data` fetches it)."""
    enum = weights_enum(arch, weights)
    path = Path(weights_path).expanduser() if weights_path else hub_weights_path(arch, weights)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    raise DatasetMissing(f"pretrained weights {arch} {weights} not found at {path}. Fetch and verify them with "
                         f"`make data TASKS=cars_resnet50`, or put {enum.url} there (torch.hub's cache: "
                         f"$TORCH_HOME/hub/checkpoints/), or set task.weights_path=..., or "
                         f"task.pretrained=false to train from scratch.")


def torchvision_body_head(arch: str, classes: int, pretrained: bool, weights: str,
                          weights_path: str | None = None,
                          hidden: int = 512, dropout: tuple[float, float] = (0.25, 0.5),
                          bn_init: str = "ones") -> BodyHead:
    """A torchvision ResNet (resnet18/34/50/...) cut before its pooling, with the fastai head."""
    net = torchvision.models.get_model(arch, weights=None)
    if pretrained:
        net.load_state_dict(load_pretrained_state(arch, weights, weights_path))
    children = list(net.children())[:8]  # drop avgpool and fc
    channels = net.fc.in_features
    return BodyHead(nn.Sequential(*children[:6]), nn.Sequential(*children[6:]),
                    fastai_head(channels, classes, hidden, dropout, bn_init))
