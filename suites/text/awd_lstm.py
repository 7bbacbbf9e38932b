"""AWD-LSTM (Merity et al. 2017, arXiv 1708.02182) and the language-model frame it shares with the
QRNN: embedding (with embedding dropout), recurrent layers with locked dropout between them, and a
decoder tied to the embedding. The frame returns what the AR/TAR loss terms need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from .regularizers import EmbeddingDropout, LockedDropout, WeightDropLSTM


@dataclass(frozen=True)
class Dropouts:
    """The five dropout rates of awd-lstm-lm (its flag names in brackets)."""

    input: float = 0.0  # locked, on the embeddings (dropouti)
    output: float = 0.0  # locked, on the last layer's output (dropout)
    weight: float = 0.0  # DropConnect on recurrent weights (wdrop)
    embedding: float = 0.0  # whole words (dropoute)
    hidden: float = 0.0  # locked, between recurrent layers (dropouth)


class LMOutput(NamedTuple):
    logits: torch.Tensor  # (T, B, V)
    state: list  # per layer, to carry into the next window
    last_output: torch.Tensor  # last layer's output before dropout (TAR penalises its changes)
    last_dropped: torch.Tensor  # the same after output dropout (AR penalises its size)


def detach_state(state: Any) -> Any:
    """The hidden state as values only: backpropagation stops at the window boundary."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(s) for s in state)
    return state


class RecurrentLM(nn.Module):
    """Embedding -> recurrent layers -> tied decoder (with bias). Layer i maps sizes[i] -> sizes[i+1],
    each called as layer(x, state) -> (output, state)."""

    def __init__(self, vocab_size: int, layers: Sequence[nn.Module], emb_size: int, dropouts: Dropouts,
                 tie_weights: bool = True, out_size: int | None = None, zero_decoder_bias: bool = True):
        super().__init__()
        self.encoder = nn.Embedding(vocab_size, emb_size)
        self.embedding_drop = EmbeddingDropout(vocab_size, dropouts.embedding)
        self.input_drop = LockedDropout(dropouts.input)
        self.hidden_drop = LockedDropout(dropouts.hidden)
        self.output_drop = LockedDropout(dropouts.output)
        self.layers = nn.ModuleList(layers)
        self.decoder = nn.Linear(emb_size if tie_weights else out_size, vocab_size)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # awd-lstm-lm's initialisation
        if zero_decoder_bias:  # awd-lstm-lm model.py:65 @1d466ec. Else nn.Linear's default U(+-1/sqrt(in)),
            nn.init.zeros_(self.decoder.bias)  # as fastai 0.7 (lm_rnn.py:151-154 @6768875) left it
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, state: list | None = None) -> LMOutput:
        x = self.input_drop(self.embedding_drop(tokens, self.encoder(tokens)))
        new_state, last = [], len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            raw, layer_state = layer(x, None if state is None else state[i])
            new_state.append(layer_state)
            x = self.hidden_drop(raw) if i < last else raw
        dropped = self.output_drop(raw)
        return LMOutput(self.decoder(dropped), new_state, raw, dropped)


def layer_sizes(emb_size: int, hidden_size: int, layers: int, tie_weights: bool) -> list[int]:
    """Input/output sizes through the stack; a tied decoder needs the last layer to output emb_size."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    return [emb_size] + [hidden_size] * (layers - 1) + [emb_size if tie_weights else hidden_size]


def awd_lstm(vocab_size: int, emb_size: int, hidden_size: int, layers: int, dropouts: Dropouts,
             tie_weights: bool = True, zero_decoder_bias: bool = True) -> RecurrentLM:
    sizes = layer_sizes(emb_size, hidden_size, layers, tie_weights)
    stack = [WeightDropLSTM(sizes[i], sizes[i + 1], dropouts.weight) for i in range(layers)]
    return RecurrentLM(vocab_size, stack, emb_size, dropouts, tie_weights, out_size=sizes[-1],
                       zero_decoder_bias=zero_decoder_bias)

