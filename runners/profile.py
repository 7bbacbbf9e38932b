"""What a run costs where it ran — status.json's `profile`: time per training step and per evaluation,
peak host and device memory, checkpoint size and, for a capped run (a rehearsal: RunConf.limit_batches),
the FLOPs of one training step. The report turns a rehearsal's profiles into the epoch time they predict
on a GPU beside the one the grid's plan assumes (report/rehearsal.py).

Measured in this process only: a resumed run's profile covers the epochs it trained after resuming.
"""
from __future__ import annotations

import itertools
import math
import resource
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sized

import torch

from .checkpoint import rng_state, set_rng_state

PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


class FirstBatches:
    """The first `n` of an epoch's batches (a rehearsal's cap). Its len() is the capped count, so the
    schedule, which reads an epoch's progress as i / len(batches), spans the capped epoch whole."""

    def __init__(self, batches: Sized, n: int):
        self.batches, self.n = batches, min(n, len(batches))

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.n)


def capped(batches: Sized, limit: int | None) -> Sized:
    return batches if limit is None else FirstBatches(batches, limit)


def reset_host_peak() -> None:
    """Start the peak resident set (VmHWM) afresh, so a grid worker's second run is not charged its
    first's peak (Linux: writing 5 to clear_refs; elsewhere the process's lifetime peak stands)."""
    try:
        PROC_CLEAR_REFS.write_text("5")
    except OSError:
        pass


def host_peak_bytes() -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024


def batch_items(batch) -> int:
    """The items a batch trains on: its targets (an image's label, a language model's next tokens) —
    a (inputs, targets) pair's second member, or a batch object's `targets`."""
    targets = getattr(batch, "targets", None)
    if targets is None and isinstance(batch, (tuple, list)):
        targets = batch[-1]
    return int(targets.numel())


def recurrent_flops(input_shape, weight_shapes) -> int:
    """A fused recurrent layer's matmul FLOPs: 2 per multiply-add of every 2-D weight (input-hidden,
    hidden-hidden) at every step of every sequence. Elementwise gate work is left out, as everywhere."""
    steps = input_shape[0] * (input_shape[1] if len(input_shape) == 3 else 1)  # (seq, batch, in) or packed
    return 2 * steps * sum(math.prod(w) for w in weight_shapes if len(w) == 2)


def _fused_rnn(input_shape, *weights, out_shape=None, **kwargs) -> int:  # mkldnn: weights as arguments 1-4
    return recurrent_flops(input_shape, [w for w in weights[:4] if isinstance(w, (list, tuple))])


def _fused_rnn_backward(input_shape, *weights, out_shape=None, **kwargs) -> int:  # data and weight grads
    return 2 * _fused_rnn(input_shape, *weights)


def _cudnn_rnn(input_shape, weights, *args, out_shape=None, **kwargs) -> int:  # cuDNN: a list of weights
    return recurrent_flops(input_shape, weights)


def _cudnn_rnn_backward(input_shape, weights, *args, out_shape=None, **kwargs) -> int:
    return 2 * recurrent_flops(input_shape, weights)


# Fused LSTM/GRU kernels, which torch's FlopCounterMode does not know (it counts only the ops in its
# registry: an nn.LSTM would add nothing). CPU: oneDNN's layer; CUDA: cuDNN's.
RECURRENT_FORMULAS = {torch.ops.aten.mkldnn_rnn_layer: _fused_rnn,
                      torch.ops.aten.mkldnn_rnn_layer_backward: _fused_rnn_backward,
                      torch.ops.aten._cudnn_rnn: _cudnn_rnn, torch.ops.aten._cudnn_rnn_backward: _cudnn_rnn_backward}


def step_flops(task, model: torch.nn.Module, batch, autocast_context=nullcontext) -> float:
    """FLOPs of one forward and backward on `batch` (torch's FlopCounterMode: matmuls, convolutions,
    attention, and fused recurrent layers by RECURRENT_FORMULAS), taken in eval mode — no dropout draws, no BatchNorm statistics — with every RNG restored
    and the gradients dropped, so the run trains as it would have without the count."""
    from torch.utils.flop_counter import FlopCounterMode

    saved, was_training = rng_state(), model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=RECURRENT_FORMULAS)
    try:
        with counter, autocast_context():
            task.loss(model, batch).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        set_rng_state(saved)
    return float(counter.get_total_flops())


class Profile:
    """Accumulates one run's timings in this process; `as_dict` is status.json's `profile`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.train_s = self.eval_s = 0.0
        self.steps = self.evaluations = 0
        # stage index -> (FLOPs of a training step, its items, the stage's share of a full run's epochs)
        self.stage_flops: dict[int, tuple[float, int, float]] = {}
        reset_host_peak()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sync(self) -> None:
        """Timings read after the device has finished what was queued (CUDA runs asynchronously)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def count(self, task, model, batches: Sized, autocast_context, stage: int = 0, weight: float = 1.0) -> None:
        """The FLOPs of a training step on the epoch's first batch, in training stage `stage`, which takes
        `weight` of a full run's epochs (a frozen body's stage costs less than fine-tuning it all)."""
        batch = next(iter(batches))
        self.stage_flops[stage] = (step_flops(task, model, batch, autocast_context), batch_items(batch), weight)

    def flops_per_step(self) -> tuple[float | None, int | None]:
        """(FLOPs of a training step averaged over the counted stages by their shares, its items)."""
        if not self.stage_flops:
            return None, None
        counted = self.stage_flops.values()
        total = sum(w for _, _, w in counted)
        return sum(f * w for f, _, w in counted) / total, next(iter(counted))[1]

    def as_dict(self, checkpoint: Path, batch_size: int | None) -> dict:
        cuda = self.device.type == "cuda"
        return {"device": str(self.device), "batch_size": batch_size, "train_steps": self.steps,
                "train_step_s": round(self.train_s / self.steps, 6) if self.steps else None,
                "evaluations": self.evaluations,
                "eval_s": round(self.eval_s / self.evaluations, 6) if self.evaluations else None,
                "peak_host_bytes": host_peak_bytes(),
                "peak_device_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else None,
                "checkpoint_bytes": checkpoint.stat().st_size if checkpoint.is_file() else None,
                **dict(zip(("flops_per_step", "items_per_step"), self.flops_per_step())),
                "flops_by_stage": [flops for _, (flops, _, _) in sorted(self.stage_flops.items())] or None}
