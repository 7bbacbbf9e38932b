"""QRNN (Bradbury et al. 2016, arXiv 1611.01576) as awd-lstm-lm runs it: a causal convolution over
time (window 2 on the first layer, 1 after) gives candidate z, forget f and output o gates, then
fo-pooling  c_t = f_t c_{t-1} + (1 - f_t) z_t,  h_t = o_t c_t.

The pooling is a first-order linear recurrence, so it is computed by an odd/even parallel scan:
O(T) work in O(log T) tensor operations, never a Python loop over time steps. Its backward is the
same scan run in reverse time, written by hand so autograd records one node instead of a graph of
every step. DropConnect on the gate weights ("weight drop") and zoneout are the regularizers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .awd_lstm import Dropouts, RecurrentLM, layer_sizes
from .regularizers import DropConnect, Zoneout


def _scan_positions(length: int, reverse: bool) -> tuple[slice, slice, int, slice, slice]:
    """Index sets of one odd/even level: (lead, folded, boundary, filled, source of filled).

    Steps are paired (lead, folded) in recurrence order; the folded ones form the half-length problem.
    The boundary step starts the recurrence, and each remaining (filled) step follows a folded one.
    In reverse the recurrence starts at the end, so the pairs are counted from there."""
    pairs = length // 2
    if not reverse:
        return (slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2), 0, slice(2, length, 2),
                slice(0, (length - 1) // 2))
    return (slice(length + 1 - 2 * pairs, length, 2), slice(length % 2, length - 1, 2), length - 1,
            slice((length - 1) % 2, length - 2, 2), slice(1 - length % 2, None))


def linear_scan_(a: torch.Tensor, b: torch.Tensor, reverse: bool = False,
                 a_is_scratch: bool = False) -> torch.Tensor:
    """In place, b becomes c: c_t = a_t c_{t-1} + b_t along dim 0 with c_{-1} = 0 (reverse: c_t =
    a_t c_{t+1} + b_t, c_T = 0). No autograd; the boundary step's coefficient is never read.

    Pairs fold into one step, e.g. forward c_{2k+1} = (a_{2k+1} a_{2k}) c_{2k-1} + (a_{2k+1} b_{2k} +
    b_{2k+1}); the half-length problem is solved recursively in the folded steps' own places, and the
    other steps are filled in from it. All in place because fresh memory is what costs on CPU (page
    faults on a multi-MB tensor cost more than the arithmetic): one half-size buffer for the folded
    coefficients, none at all when `a` may be overwritten.
    """
    length = a.shape[0]
    if length == 1:
        return b
    lead, folded, boundary, filled, source = _scan_positions(length, reverse)
    a_folded, b_folded = a[folded], b[folded]
    b_folded.addcmul_(a_folded, b[lead])
    a_pairs = a_folded.mul_(a[lead]) if a_is_scratch else a_folded * a[lead]
    linear_scan_(a_pairs, b_folded, reverse, a_is_scratch=True)
    b[filled].addcmul_(a[filled], b_folded[source])  # the boundary step keeps c = b
    return b


class ForgetMult(torch.autograd.Function):
    """fo-pooling c_t = f_t c_{t-1} + (1 - f_t) z_t over (T, B, H) inputs, initial state c0 (B, H)."""

    @staticmethod
    def forward(ctx, forget: torch.Tensor, candidate: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
        c = torch.addcmul(candidate, forget, candidate, value=-1)  # (1 - f) z, scanned in place
        c[0].addcmul_(forget[0], c0)
        linear_scan_(forget, c)
        ctx.save_for_backward(forget, candidate, c, c0)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor):
        forget, candidate, c, c0 = ctx.saved_tensors
        # g_t = dL/dc_t = grad_t + f_{t+1} g_{t+1} runs in reverse time; scanned as u_t = f_t g_t,
        # u_t = f_t u_{t+1} + f_t grad_t, it needs no shifted copy of f. u_0 is dL/dc0.
        carried = linear_scan_(forget, forget * grad_c, reverse=True)
        grad_state = torch.empty_like(c)
        torch.add(grad_c[:-1], carried[1:], out=grad_state[:-1])
        grad_state[-1] = grad_c[-1]
        grad_forget = torch.empty_like(c)  # g_t (c_{t-1} - z_t)
        torch.sub(c[:-1], candidate[1:], out=grad_forget[1:])
        torch.sub(c0, candidate[0], out=grad_forget[0])
        grad_forget.mul_(grad_state)
        grad_candidate = grad_state.addcmul_(grad_state, forget, value=-1)  # g_t (1 - f_t)
        return grad_forget, grad_candidate, carried[0]


def forget_mult(forget: torch.Tensor, candidate: torch.Tensor, c0: torch.Tensor | None = None):
    """fo-pooling by parallel scan; c0 defaults to zeros."""
    if c0 is None:
        c0 = candidate.new_zeros(candidate.shape[1:])
    return ForgetMult.apply(forget, candidate, c0)


def forget_mult_loop(forget: torch.Tensor, candidate: torch.Tensor, c0: torch.Tensor | None = None):
    """The sequential definition, one Python step per time step: the reference for tests and bench."""
    c = candidate.new_zeros(candidate.shape[1:]) if c0 is None else c0
    states = []
    for f_t, z_t in zip(forget, candidate):
        c = f_t * c + (1 - f_t) * z_t
        states.append(c)
    return torch.stack(states)


class QRNNLayer(nn.Module):
    """One QRNN layer. State between calls: (c, previous input step) — the window-2 convolution of
    the next batch needs the last input of this one, as awd-lstm-lm's `save_prev_x`."""

    def __init__(self, input_size: int, hidden_size: int, window: int = 1, weight_p: float = 0.0,
                 zoneout: float = 0.0):
        super().__init__()
        if window not in (1, 2):
            raise ValueError(f"QRNN window must be 1 or 2, got {window}")
        self.input_size, self.hidden_size, self.window = input_size, hidden_size, window
        self.linear = nn.Linear(input_size * window, 3 * hidden_size)
        self.weight_drop = DropConnect(weight_p)
        self.zoneout = Zoneout(zoneout)
        self.pool = forget_mult  # fo-pooling; bench/recurrent.py swaps in forget_mult_loop to compare

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        steps, batch, _ = x.shape
        if state is None:
            c0, previous_x = x.new_zeros(batch, self.hidden_size), x.new_zeros(1, batch, self.input_size)
        else:
            c0, previous_x = state
        if self.window == 2:  # causal convolution of width 2 = features of steps t-1 and t side by side
            shifted = torch.cat([previous_x, x[:-1]])
            conv_input = torch.cat([shifted, x], dim=2)
        else:
            conv_input = x
        gates = F.linear(conv_input, self.weight_drop(self.linear.weight), self.linear.bias)
        # Pooled in fp32 under any autocast: a bf16 state would drift over a long window.
        candidate, forget, output = gates.float().chunk(3, dim=2)
        forget = self.zoneout(torch.sigmoid(forget))
        c = self.pool(forget, torch.tanh(candidate), c0.float())
        return torch.sigmoid(output) * c, (c[-1], x[-1:])


def qrnn_lm(vocab_size: int, emb_size: int, hidden_size: int, layers: int, dropouts: Dropouts,
            tie_weights: bool = True, zoneout: float = 0.0, zero_decoder_bias: bool = True) -> RecurrentLM:
    """awd-lstm-lm's QRNN: convolution window 2 on the first layer, 1 after; weight drop on each
    layer's gate weights."""
    sizes = layer_sizes(emb_size, hidden_size, layers, tie_weights)
    stack = [QRNNLayer(sizes[i], sizes[i + 1], window=2 if i == 0 else 1, weight_p=dropouts.weight,
                       zoneout=zoneout) for i in range(layers)]
    return RecurrentLM(vocab_size, stack, emb_size, dropouts, tie_weights, out_size=sizes[-1],
                       zero_decoder_bias=zero_decoder_bias)
