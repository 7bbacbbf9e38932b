"""What a run's task and optimizer can do beyond the required members, read once: the engine consults
this object, never the objects' attributes by name. Each optional member is a protocol — a task's in
suites/base.py, an optimizer's in runners/optimizers.py — so implementers and the engine agree on one
signature. (A batch's `lr_scale`, suites/base.py ScaledBatch, varies per batch and is read there.)"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

from suites.base import EpochEndHook, FinalMetrics

from .optimizers import EvaluationWeights, OptimizerEpochEnd, RefreshesBatchNorm


@dataclass(frozen=True)
class Capabilities:
    evaluate_final: Callable | None = None  # the task's end-of-run metrics (FinalMetrics)
    evaluation_weights: Callable[[], ContextManager] = nullcontext  # the optimizer's (EvaluationWeights)
    refresh_batches: int = 0  # BatchNorm recomputed over these before evaluating (RefreshesBatchNorm)
    epoch_end: tuple[Callable[[int, dict], None], ...] = ()  # told each epoch's row, task first

    @classmethod
    def of(cls, task, optimizer) -> Capabilities:
        """Those of `task` and `optimizer` (an optimizer is built afresh for each training stage)."""
        hooks = [task.on_epoch_end] if isinstance(task, EpochEndHook) else []
        hooks += [optimizer.on_epoch_end] if isinstance(optimizer, OptimizerEpochEnd) else []
        return cls(evaluate_final=task.evaluate_final if isinstance(task, FinalMetrics) else None,
                   evaluation_weights=(optimizer.evaluation_weights if isinstance(optimizer, EvaluationWeights)
                                       else nullcontext),
                   refresh_batches=(int(optimizer.batchnorm_refresh_batches)
                                    if isinstance(optimizer, RefreshesBatchNorm) else 0),
                   epoch_end=tuple(hooks))
