"""The task interface: what a claim gives the engine. A task never knows which optimizer trains it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sized

import torch
from torch import nn


class Task(ABC):
    """Five members. Built as `TaskClass(cfg, device)` from its config (a TaskConf subclass).

    The engine seeds torch before `build_model`, calls `train_batches` once per epoch with a generator
    seeded from (seed, epoch) — so an epoch's data order and augmentation are reproducible on resume —
    and wraps `evaluate` in eval mode, no_grad and the run's autocast. A batch may carry `lr_scale`
    (e.g. variable-length BPTT scales the LR by seq_len / bptt). A task may also define
    `on_epoch_end(epoch, row)`, called after each evaluation, and end-of-run metrics: names in a tuple
    `final_metrics` and `evaluate_final(model) -> dict`, which the engine calls on the last epoch only, in
    `evaluate`'s context, adding them to that epoch's row (suites/text/tasks.py: the blog's LM evaluation).
    """

    metrics: tuple[str, ...] = ()  # the names `evaluate` returns; the target metric is one of them

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model (on CPU; the engine moves it). May define `param_groups()` -> {name: params}."""

    @abstractmethod
    def train_batches(self, epoch: int, generator: torch.Generator) -> Sized:
        """The epoch's training batches, on the task's device, in a sized iterable."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Training loss of one batch, regularisation terms included."""

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Every metric in `metrics`, on the held-out data."""
