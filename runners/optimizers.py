"""Optimizers from config: parameter groups, per-group LR multipliers, freezing, and weight decay.

Weight decay is applied here, not by the optimizer class, so that every optimizer — including any
torch.optim-compatible class plugged in by a config file — gets both modes:
  l2         grad <- grad + wd * p          (as torch.optim.Adam/SGD weight_decay; after clipping)
  decoupled  p    <- p - lr_t * wd * p      (AdamW, Loshchilov & Hutter; fastai 0.7 applies it before
                                             the optimizer step, as we do)
The class itself is built with weight_decay=0 when it has that argument. A third mode, `native`, leaves
decay to the class in its own published form (Schedule-Free AdamW, Lion, Muon): each torch group gets
`weight_decay` = its decay (0 for biases and norms) and `apply_weight_decay` does nothing.

A class with `splits_io_params = True` (runners/muon.py) gets its groups split once more by parameter
name: `group["muon"]` is True for the hidden weight matrices, False for the task's input/output layers
(task.io_params, fnmatch patterns of model.named_parameters() names) and every parameter with ndim < 2.

A schedule's momentum reaches only the groups flagged `cycle_momentum` (optimizer.cycle_momentum):
1cycle cycles SGD's momentum and Adam's beta1 because the blog's scripts did (Adam-experiments@b1ede77
utils.py:7-20, train_rnn.py:25 "momentum/beta1"); no source cycles Lion's beta1, Muon's momentum or
Schedule-Free's beta1, so those keep their configured values (Muon's groups are never flagged).
"""
from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from fnmatch import fnmatchcase
from typing import Any, ContextManager, Mapping, Protocol, runtime_checkable

import torch
from hydra.utils import get_class
from torch import nn

from suites.base import NamedParamGroups


# --- Optional members of an optimizer class: none is required. The engine reads a run's once per
# training stage (runners/capabilities.py); the task's are declared in suites/base.py.

@runtime_checkable
class EvaluationWeights(Protocol):
    """A context in which the model holds the weights to evaluate, not those it trains at.
    Implemented by runners/ntasgd.py:NTASGD (averaged iterates) and runners/schedule_free.py (its x)."""

    def evaluation_weights(self) -> ContextManager: ...


@runtime_checkable
class RefreshesBatchNorm(Protocol):
    """BatchNorm statistics recomputed over this many training batches inside `evaluation_weights`
    before each evaluation (runners/engine.py recompute_batchnorm). Implemented by schedule_free.py."""

    batchnorm_refresh_batches: int


@runtime_checkable
class OptimizerEpochEnd(Protocol):
    """Called after each epoch's evaluation with that epoch's row (1-based).
    Implemented by runners/ntasgd.py:NTASGD (its switch to averaging)."""

    def on_epoch_end(self, epoch: int, row: dict) -> None: ...


@runtime_checkable
class SplitsIOParams(Protocol):
    """A class whose groups are split by parameter kind, `group["muon"]` (runners/muon.py): the task's
    input/output layers (task.io_params) and every ndim < 2 parameter apart from the hidden matrices."""

    splits_io_params: bool


def splits_io_params(cls: type) -> bool:
    # A class attribute, read before any instance exists: issubclass refuses protocols with data members.
    return bool(getattr(cls, "splits_io_params", False))


def check_optimizer_class(target: str, kwarg_names: list[str], wd_mode: str = "decoupled",
                          io_params=None, cycle_momentum: bool = False) -> str | None:
    """A problem with `optimizer._target_`, the kwargs it is given, its wd_mode or cycle_momentum (relative
    to `optimizer.`), or None: checked with the config, before a run starts, rather than when the model
    is built. `io_params`: the task's, refused when empty for a class that splits them off."""
    quiet = logging.getLogger("hydra.utils")  # get_class logs the failure too: the message below says it
    was, quiet.disabled = quiet.disabled, True
    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001 — hydra raises ImportError, ValueError, ... for a bad path
        return f"_target_ must name an importable optimizer class (e.g. torch.optim.AdamW), got {target!r}"
    finally:
        quiet.disabled = was
    params = inspect.signature(cls.__init__).parameters
    if wd_mode == "native" and "weight_decay" not in params:
        return f"wd_mode=native needs a class that decays itself (a weight_decay argument); {target} has none"
    if splits_io_params(cls) and not io_params:
        return (f"_target_={target} trains the task's input/output layers with AdamW: task.io_params must "
                f"name them (fnmatch patterns of parameter names), got []")
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    if cycle_momentum and not {"momentum", "betas"} & set(params):
        return f"cycle_momentum=true needs a class with a momentum or betas argument; {target} has neither"
    unknown = sorted(set(kwarg_names) - set(params) - {"self", "params"})
    if unknown:
        takes = sorted(set(params) - {"self", "params", "lr", "weight_decay"})
        return f"kwargs {unknown} must be arguments of {target}, which takes {takes}"
    return None


def named_param_groups(model: nn.Module) -> "OrderedDict[str, list[nn.Parameter]]":
    """A model may name its parameter groups (body -> head) with `param_groups()`; else one group."""
    if isinstance(model, NamedParamGroups):
        return OrderedDict(model.param_groups())
    return OrderedDict(all=list(model.parameters()))


def is_bias_or_norm(param: nn.Parameter) -> bool:
    # Biases and normalisation scales are the 0/1-d parameters; decaying them only hurts (fastai, timm).
    return param.ndim <= 1


def _check_names(kind: str, names, known) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"optimizer.{kind} names unknown parameter group(s) {unknown}; "
                         f"this model has {list(known)}")


def io_split(model: nn.Module, io_params) -> "dict[int, bool]":
    """id(param) -> whether Muon trains it: ndim >= 2 and its name matches none of `io_params`. Raises
    ValueError when a pattern matches no parameter (a typo would silently hand a layer to Muon) or when
    no parameter is left for Muon."""
    named = list(model.named_parameters())  # tied weights appear once, under their first name
    if not io_params:
        raise ValueError("task.io_params must name the model's input/output layers (fnmatch patterns of "
                         "parameter names) for an optimizer that splits them off, got []")
    unmatched = [pat for pat in io_params if not any(fnmatchcase(n, pat) for n, _ in named)]
    if unmatched:
        names = [n for n, _ in named]  # a ResNet-50 has hundreds: the first few say how they are spelled
        shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
        raise ValueError(f"task.io_params {unmatched} match no parameter of this model; its parameters are "
                         f"{shown}")
    muon = {id(p): p.ndim >= 2 and not any(fnmatchcase(n, pat) for pat in io_params) for n, p in named}
    if not any(muon.values()):
        raise ValueError(f"task.io_params {list(io_params)} leave no hidden weight matrix (ndim >= 2) "
                         f"for Muon: every parameter would be trained by AdamW")
    return muon


def _group_params(params, no_decay_split: bool, wd: float, muon: "dict[int, bool] | None"):
    """(params, decay, extra group keys) lists of one named group: decayed vs biases/norms, and, when
    the class splits, Muon vs AdamW parameters."""
    plain = [p for p in params if no_decay_split and is_bias_or_norm(p)]
    decayed = [p for p in params if not (no_decay_split and is_bias_or_norm(p))]
    for plist, decay in ((decayed, wd), (plain, 0.0)):
        if muon is None:
            yield plist, decay, {}
            continue
        for flag in (True, False):
            yield [p for p in plist if muon[id(p)] is flag], decay, {"muon": flag}


def build_optimizer(cfg: Mapping[str, Any], model: nn.Module, lr: float,
                    io_params=()) -> torch.optim.Optimizer:
    """Build the optimizer named by cfg['_target_'] over the model's groups, base LR `lr`; `io_params`:
    the task's input/output layer patterns, for a class that splits them off (runners/muon.py)."""
    groups = named_param_groups(model)
    mults = dict(cfg.get("group_lr_mult") or {})
    frozen = set(cfg.get("freeze") or [])
    _check_names("group_lr_mult", mults, groups)
    _check_names("freeze", frozen, groups)
    wd = float(cfg.get("weight_decay", 0.0))
    cls = get_class(cfg["_target_"])
    muon = io_split(model, io_params) if splits_io_params(cls) else None
    native = cfg.get("wd_mode") == "native"
    cycle = bool(cfg.get("cycle_momentum", False))
    torch_groups = []
    for name, params in groups.items():
        for p in params:
            p.requires_grad_(name not in frozen)
        mult = float(mults.get(name, 1.0))
        for plist, decay, extra in _group_params(params, bool(cfg.get("no_decay_bias_norm", True)), wd, muon):
            if plist:
                torch_groups.append({"params": plist, "lr": lr * mult, "lr_mult": mult, "decay": decay,
                                     "group": name, "cycle_momentum": cycle and not extra.get("muon", False),
                                     **extra, **({"weight_decay": decay} if native else {})})
    kwargs = dict(cfg.get("kwargs") or {})
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    if "weight_decay" in inspect.signature(cls.__init__).parameters:
        kwargs["weight_decay"] = 0.0  # native: each group's own weight_decay overrides this default
    optimizer = cls(torch_groups, lr=lr, **kwargs)
    for group in optimizer.param_groups:
        group["base_lr"] = lr
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * group["lr_mult"] * multiplier


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> None:
    """Scheduled momentum goes to SGD's momentum or to Adam's beta1, in the groups flagged
    `cycle_momentum` by build_optimizer; every other group keeps its own."""
    for group in optimizer.param_groups:
        if not group.get("cycle_momentum", False):
            continue
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = momentum


def current_momentum(optimizer: torch.optim.Optimizer) -> float | None:
    """The momentum the optimizer steps with (the records' `momentum`): a cycled group's, else the first
    group's own (Muon's for MuonAdamW, its first group being a Muon one); None when it has none."""
    groups = optimizer.param_groups
    group = next((g for g in groups if g.get("cycle_momentum", False)), groups[0])
    if "betas" in group:
        return float(group["betas"][0])
    return float(group["momentum"]) if "momentum" in group else None


@torch.no_grad()
def apply_weight_decay(optimizer: torch.optim.Optimizer, mode: str) -> None:
    """Call after clipping, before optimizer.step(). Frozen parameters (no grad) are left alone; `native`:
    the class decays (each group's weight_decay, set by build_optimizer)."""
    if mode == "native":
        return
    for group in optimizer.param_groups:
        decay = group.get("decay", 0.0)
        if not decay:
            continue
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        if mode == "l2":
            torch._foreach_add_([p.grad for p in params], params, alpha=decay)
        else:
            torch._foreach_mul_(params, 1.0 - group["lr"] * decay)
