"""Language-model tasks: AWD-LSTM and QRNN on WikiText-2 (claims 3 and 4) and their synthetic twins.

Training as awd-lstm-lm: the stream batchified into columns, variable-length BPTT windows (the engine
scales the LR by seq_len / bptt), the hidden state carried and detached between windows and reset
each epoch. Loss = cross-entropy + AR (alpha * mean squared last-layer output, after dropout) + TAR
(beta * mean squared change of the last layer's output between steps, before dropout). Metrics:
val_loss (mean token cross-entropy, nats), val_ppl = exp(val_loss), test_ppl.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from runners.config import TaskConf
from runners.errors import UserError

from ..base import Task
from .awd_lstm import Dropouts, LMOutput, awd_lstm, detach_state
from .cache import cache_cross_entropy
from .data import Corpus, TextBatch, batchify, bptt_batches, load_wikitext2
from .qrnn import qrnn_lm
from .synth import synthetic_corpus

MODELS = ("awd_lstm", "qrnn")


@dataclass
class LanguageModelConf(TaskConf):
    model: str = "awd_lstm"  # awd_lstm | qrnn
    batch_size: int = 80
    bptt: int = 70
    variable_bptt: bool = True
    eval_batch_size: int = 10  # awd-lstm-lm's validation batch size
    test_batch_size: int = 1  # ... and its test batch size
    emb_size: int = 400
    hidden_size: int = 1150
    layers: int = 3
    tie_weights: bool = True
    dropout_input: float = 0.65
    dropout_output: float = 0.4
    dropout_weight: float = 0.5
    dropout_embedding: float = 0.1
    dropout_hidden: float = 0.2
    zoneout: float = 0.0  # QRNN only
    ar_alpha: float = 2.0
    tar_beta: float = 1.0
    # Neural cache pointer evaluation (suites/text/cache.py), reported as val_cache_ppl/test_cache_ppl;
    # 0 turns it off. The blog/awd-lstm-lm WikiText-2 values: 3785, 0.662, 0.1279.
    cache_window: int = 0
    cache_theta: float = 0.662
    cache_lambda: float = 0.1279


@dataclass
class WikiText2Conf(LanguageModelConf):
    # A directory holding wiki.{train,valid,test}.tokens; None: $ONECYCLE_WIKITEXT_DIR, else the hub.
    data_dir: Optional[str] = None
    hf_cache_dir: Optional[str] = None  # datasets' cache for the hub copy (None: its default)


@dataclass
class SynthTextConf(LanguageModelConf):
    vocab_size: int = 16
    branching: int = 3  # successors per context of the second-order source
    source_seed: int = 0  # the corpus, not the run: every run of every seed sees the same text
    train_tokens: int = 40_000
    valid_tokens: int = 10_000
    test_tokens: int = 10_000
    floor_margin: float = 0.05  # target.value must be floor_ppl * (1 + floor_margin)


def activation_penalties(out: LMOutput, alpha: float, beta: float) -> torch.Tensor:
    """AR + TAR (Merity et al. 2017, section 4.6) on the last layer."""
    penalty = out.logits.new_zeros(())
    if alpha:
        penalty = penalty + alpha * out.last_dropped.pow(2).mean()
    if beta and out.last_output.shape[0] > 1:
        penalty = penalty + beta * (out.last_output[1:] - out.last_output[:-1]).pow(2).mean()
    return penalty


def build_model(cfg, vocab_size: int) -> nn.Module:
    if cfg.model not in MODELS:
        raise UserError(f"task.model must be one of {MODELS}, got {cfg.model!r}")
    dropouts = Dropouts(input=cfg.dropout_input, output=cfg.dropout_output, weight=cfg.dropout_weight,
                        embedding=cfg.dropout_embedding, hidden=cfg.dropout_hidden)
    sizes = dict(vocab_size=vocab_size, emb_size=cfg.emb_size, hidden_size=cfg.hidden_size,
                 layers=cfg.layers, dropouts=dropouts, tie_weights=cfg.tie_weights)
    if cfg.model == "qrnn":
        return qrnn_lm(**sizes, zoneout=cfg.zoneout)
    return awd_lstm(**sizes)


@torch.no_grad()
def mean_cross_entropy(model: nn.Module, data: torch.Tensor, bptt: int) -> float:
    """Mean next-token cross-entropy over batchified `data`, in fixed windows, state carried."""
    total, count, state, vocab = data.new_zeros((), dtype=torch.float64), 0, None, None
    for start in range(0, data.shape[0] - 1, bptt):
        length = min(bptt, data.shape[0] - 1 - start)
        out = model(data[start:start + length], state)
        state, vocab = out.state, out.logits.shape[-1]
        targets = data[start + 1:start + 1 + length].reshape(-1)
        total += F.cross_entropy(out.logits.reshape(-1, vocab).float(), targets, reduction="sum")
        count += targets.numel()
    return total.item() / count


class LanguageModelTask(Task):
    metrics = ("val_loss", "val_ppl", "test_ppl")

    def __init__(self, cfg, corpus: Corpus, device):
        self.cfg, self.vocab_size = cfg, len(corpus.words)
        device = torch.device(device)
        self.train_data = batchify(corpus.train, cfg.batch_size).to(device)
        self.valid_data = batchify(corpus.valid, cfg.eval_batch_size).to(device)
        self.test_data = batchify(corpus.test, cfg.test_batch_size).to(device)
        self._state = None  # the hidden state carried from one training window to the next
        if cfg.cache_window > 0:
            self.metrics = (*LanguageModelTask.metrics, "val_cache_ppl", "test_cache_ppl")

    def build_model(self) -> nn.Module:
        return build_model(self.cfg, self.vocab_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> list[TextBatch]:
        return bptt_batches(self.train_data, self.cfg.bptt, generator, self.cfg.variable_bptt)

    def loss(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        out = model(batch.inputs, None if batch.reset_state else self._state)
        self._state = detach_state(out.state)
        cross_entropy = F.cross_entropy(out.logits.reshape(-1, self.vocab_size), batch.targets.reshape(-1))
        return cross_entropy + activation_penalties(out, self.cfg.ar_alpha, self.cfg.tar_beta)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val_loss = mean_cross_entropy(model, self.valid_data, self.cfg.bptt)
        test_loss = mean_cross_entropy(model, self.test_data, self.cfg.bptt)
        metrics = {"val_loss": val_loss, "val_ppl": math.exp(val_loss), "test_ppl": math.exp(test_loss)}
        if self.cfg.cache_window > 0:
            cache = (self.cfg.bptt, self.cfg.cache_window, self.cfg.cache_theta, self.cfg.cache_lambda)
            metrics["val_cache_ppl"] = math.exp(cache_cross_entropy(model, self.valid_data, *cache))
            metrics["test_cache_ppl"] = math.exp(cache_cross_entropy(model, self.test_data, *cache))
        return metrics


class WikiText2LM(LanguageModelTask):
    """`awd_lstm_wt2` / `qrnn_wt2`: WikiText-2 (v1, tokenized), vocabulary 33,278."""

    def __init__(self, cfg, device="cpu"):
        super().__init__(cfg, load_wikitext2(cfg.data_dir, cfg.hf_cache_dir), device)


class SynthLM(LanguageModelTask):
    """`synth_awd_lstm` / `synth_qrnn`: the same models and code paths on a second-order Markov
    source whose perplexity floor is known exactly (suites/text/synth.py)."""

    def __init__(self, cfg, device="cpu"):
        corpus, self.floor_ppl = synthetic_corpus(cfg.vocab_size, cfg.branching, cfg.source_seed,
                                                  cfg.train_tokens, cfg.valid_tokens, cfg.test_tokens)
        expected = self.floor_ppl * (1 + cfg.floor_margin)
        if not math.isclose(cfg.target.value, expected, rel_tol=1e-3):
            raise UserError(f"task.target.value={cfg.target.value} is not {cfg.floor_margin:.0%} above this "
                            f"source's floor perplexity {self.floor_ppl:.4f}: set task.target.value="
                            f"{expected:.4f} (or change task.floor_margin)")
        super().__init__(cfg, corpus, device)
