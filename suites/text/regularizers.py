"""AWD-LSTM's regularizers, one small module each (Merity et al. 2017, arXiv 1708.02182).

All are inverted dropouts: scaled by 1/keep in training so evaluation uses the plain weights/activations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

_BITS = 16  # resolution of the CPU mask's keep probability: multiples of 2**-16


def scaled_keep_mask(shape: torch.Size | tuple, keep: float, like: torch.Tensor) -> torch.Tensor:
    """Independent Bernoulli(keep) draws scaled so that E[mask] = 1, dtype/device of `like`.

    On CPU, `bernoulli_`/`F.dropout` draw one float per element through a slow path. Here each int64
    draw supplies four 16-bit uniform integers, and one comparison writes the 0/1 mask straight into a
    float buffer: about an eighth of F.dropout's time for a 4600 x 1150 weight. The keep probability is
    rounded to a multiple of 2**-16 (off by at most 7.6e-6) and the scale is that value's exact
    inverse, so the mask stays unbiased.
    """
    if like.device.type != "cpu":  # GPU generators are fast; use the standard op there
        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep).div_(keep)
    count = int(torch.Size(shape).numel())
    words = torch.empty(-(-count // 4), dtype=torch.int64).random_(-2**63, 2**63 - 1)
    uniform = words.view(torch.int16)[:count]  # uniform over [-2**15, 2**15)
    kept = min(max(round(keep * 2**_BITS), 1), 2**_BITS - 1)  # how many of the 2**16 values keep
    mask = torch.lt(uniform, kept - 2**(_BITS - 1), out=torch.empty(count, dtype=like.dtype))
    return mask.mul_(2**_BITS / kept).view(shape)


class LockedDropout(nn.Module):
    """Variational dropout: one mask per sequence, shared by every time step. Input (T, B, H)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * scaled_keep_mask((1, *x.shape[1:]), 1 - self.p, x)


class EmbeddingDropout(nn.Module):
    """Drops whole words: a dropped vocabulary row is zero wherever that word occurs in the batch.
    Given the ids and their looked-up vectors; masking the looked-up rows equals masking the
    embedding matrix, without touching all V x E entries."""

    def __init__(self, vocab_size: int, p: float):
        super().__init__()
        self.vocab_size, self.p = vocab_size, p

    def forward(self, words: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return vectors
        row_mask = scaled_keep_mask((self.vocab_size, 1), 1 - self.p, vectors)
        return vectors * F.embedding(words, row_mask)


class DropConnect(nn.Module):
    """DropConnect on a weight matrix (Wan et al. 2013): a fresh mask each training forward."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return weight
        return weight * scaled_keep_mask(weight.shape, 1 - self.p, weight)


class Zoneout(nn.Module):
    """Zoneout on a forget gate f of h_t = f h_{t-1} + (1 - f) z_t: a zoned-out unit keeps its state
    (f = 1); evaluation uses the expectation, (1 - f) scaled by 1 - p (Krueger et al. 2016)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, forget: torch.Tensor) -> torch.Tensor:
        if self.p == 0:
            return forget
        if not self.training:
            return 1 - (1 - forget) * (1 - self.p)
        update = torch.empty_like(forget).bernoulli_(1 - self.p)
        return 1 - (1 - forget) * update


class WeightDropLSTM(nn.Module):
    """One LSTM layer with DropConnect on its hidden-to-hidden weights ("weight drop").

    The dropped matrix is passed to the module's own fused kernel through `functional_call`, so the
    LSTM still runs as one cuDNN/ATen call, never a Python loop over time; parameters keep nn.LSTM's
    names (`lstm.weight_hh_l0`, ...).
    """

    def __init__(self, input_size: int, hidden_size: int, weight_p: float):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.weight_drop = DropConnect(weight_p)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if not self.training or self.weight_drop.p == 0:
            return self.lstm(x, state)
        dropped = self.weight_drop(self.lstm.weight_hh_l0)
        return functional_call(self.lstm, {"weight_hh_l0": dropped}, (x, state))
