"""Neural cache pointer evaluation (Grave et al. 2016, arXiv 1612.04426), as the blog's 52.9 / 50.9.

A trained model's own recent hidden states act as a memory: at step t, each of the last `window`
steps i < t votes for the word that followed it, y_i = x_{i+1}, with weight exp(theta h_t . h_i);
the normalised votes p_cache mix with the model's softmax: p = (1 - lam) p_model + lam p_cache. No
training; each batch column is its own stream with its own cache, and the cache carries across
windows like the hidden state.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def cache_cross_entropy(model: nn.Module, data: torch.Tensor, bptt: int, window: int, theta: float,
                        lam: float) -> float:
    """Mean next-token cross-entropy of the cache-mixed model over batchified `data` (rows, B)."""
    keys = next_words = None  # cached h_i (N, B, d) and y_i (N, B)
    total, count, state = 0.0, 0, None
    for start in range(0, data.shape[0] - 1, bptt):
        length = min(bptt, data.shape[0] - 1 - start)
        out = model(data[start:start + length], state)
        state = out.state
        targets = data[start + 1:start + 1 + length]
        hidden = out.last_dropped.float()  # eval mode: no dropout, the last layer's output
        keys = hidden if keys is None else torch.cat([keys, hidden])
        next_words = targets if next_words is None else torch.cat([next_words, targets])
        probs = mixed_probabilities(out.logits.float(), hidden, keys, next_words, window, theta, lam)
        total += -probs.gather(2, targets.unsqueeze(2)).clamp_min(1e-30).log().sum().item()
        count += targets.numel()
        keys, next_words = keys[-window:], next_words[-window:]  # all the next window can reach
    return total / count


def mixed_probabilities(logits: torch.Tensor, hidden: torch.Tensor, keys: torch.Tensor,
                        next_words: torch.Tensor, window: int, theta: float, lam: float) -> torch.Tensor:
    """(L, B, V) mixture for the window's L steps; keys/next_words end with this window's L steps."""
    length, cached = hidden.shape[0], keys.shape[0]
    scores = theta * torch.einsum("lbd,nbd->lbn", hidden, keys)
    # Step j of the window (position cached - length + j) sees keys strictly before it, at most `window`.
    position = torch.arange(cached - length, cached, device=keys.device).view(length, 1, 1)
    key_position = torch.arange(cached, device=keys.device).view(1, 1, cached)
    visible = (key_position < position) & (key_position >= position - window)
    weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=2).nan_to_num(0.0)
    pointer = torch.zeros_like(logits).scatter_add_(
        2, next_words.t().unsqueeze(0).expand(length, -1, -1), weights)
    model_probs = F.softmax(logits, dim=2)
    has_cache = visible.any(dim=2, keepdim=True)  # the very first step has nothing to point to
    return torch.where(has_cache, (1 - lam) * model_probs + lam * pointer, model_probs)
