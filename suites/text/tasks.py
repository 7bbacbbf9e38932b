"""Language-model tasks: AWD-LSTM and QRNN on WikiText-2 (claims 3 and 4) and their synthetic twins.

Training: the stream batchified into columns, variable-length BPTT windows, the hidden state carried and
detached between windows and reset each epoch. Loss = cross-entropy + AR (alpha * mean squared last-layer
output) + TAR (beta * mean squared change of the last layer's output between steps, before dropout).
Metrics: val_loss (mean token cross-entropy, nats), val_ppl = exp(val_loss), test_ppl, as awd-lstm-lm
evaluates; and at the end of a run the blog's val_ppl_blog / test_ppl_blog (`blog_cross_entropy`).
With task.split=validation (tuning trials) the validation set stays the evaluated part, as it is the
claims' own metric, and every test-set metric is dropped: no model is ever scored on the test set.
Where the blog's code (fastai 0.7, sgugger/Adam-experiments) and awd-lstm-lm differ, an option picks;
its default is the blog's form and the *_reference recipes set awd-lstm-lm's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from results.errors import UserError

from ..base import DataNeed, Task, TaskConf, at_least, one_of, probabilities
from ..splits import metric_prefix
from .awd_lstm import Dropouts, LMOutput, awd_lstm, detach_state
from .cache import cache_cross_entropy
from .data import (LOADERS, Corpus, TextBatch, batchify, bptt_batches, default_dir, load_wikitext2,
                   with_pad_token)
from .qrnn import qrnn_lm
from .synth import synthetic_corpus

MODELS = ("awd_lstm", "qrnn")


@dataclass
class LanguageModelConf(TaskConf):
    model: str = "awd_lstm"  # awd_lstm | qrnn
    batch_size: int = 80
    bptt: int = 70
    variable_bptt: bool = True  # False: fixed bptt windows over the whole stream, with either loader
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
    # Blog (default) vs awd-lstm-lm forms; each cites its sources where it is used.
    ar_after_output_dropout: bool = False  # AR on the output after output dropout (awd-lstm-lm)
    lr_scale_by_seq_len: bool = False  # LR x seq_len / bptt for each window (awd-lstm-lm)
    bptt_loader: str = "fastai"  # window rule: fastai (0.7 LanguageModelLoader) | awd_lstm
    pad_token: bool = True  # `_pad_` at vocabulary index 0 (the blog's scripts; never in the text)
    zero_decoder_bias: bool = False  # zero init (awd-lstm-lm) or nn.Linear's default (fastai 0.7)
    # The blog's end-of-run evaluation (val_ppl_blog, test_ppl_blog): batch 1, windows of this many
    # tokens, the tail dropped; 0 turns it off.
    blog_eval_bptt: int = 2000

    def problems(self) -> list[str]:
        return (super().problems() + one_of(self, "model", MODELS) + one_of(self, "bptt_loader", LOADERS)
                + at_least(self, 1, "batch_size", "bptt", "eval_batch_size", "test_batch_size", "emb_size",
                           "hidden_size", "layers")
                + at_least(self, 0, "cache_window", "blog_eval_bptt", "ar_alpha", "tar_beta")
                + probabilities(self, "dropout_input", "dropout_output", "dropout_weight",
                                "dropout_embedding", "dropout_hidden", "zoneout"))


@dataclass
class WikiText2Conf(LanguageModelConf):
    # A directory holding wiki.{train,valid,test}.tokens; None: $ONECYCLE_WIKITEXT_DIR, else
    # <$ONECYCLE_DATA or ./data>/wikitext-2, where `make data` puts it.
    data_dir: Optional[str] = None
    # Merity et al. 2016, Table 1 (suites/data/items.py WikiText2.published, counted as data.py's
    # corpus_counts): 2,088,628 training and 217,646 validation tokens (the claims' evaluated split).
    published_items: ClassVar[dict] = {"train": 2_088_628, "eval": 217_646, "unit": "token"}

    def data_needs(self) -> list[DataNeed]:
        return [DataNeed("wikitext2", Path(self.data_dir).expanduser() if self.data_dir else default_dir())]

    def fabricated(self, root: Path) -> dict:
        return {"data_dir": str(root / "wikitext-2")}


@dataclass
class SynthTextConf(LanguageModelConf):
    vocab_size: int = 16
    branching: int = 3  # successors per context of the second-order source
    source_seed: int = 0  # the corpus, not the run: every run of every seed sees the same text
    train_tokens: int = 40_000
    valid_tokens: int = 10_000
    test_tokens: int = 10_000
    floor_margin: float = 0.05  # target.value must be floor_ppl * (1 + floor_margin)

    def problems(self) -> list[str]:
        found = (super().problems() + at_least(self, 2, "vocab_size") + at_least(self, 0, "floor_margin")
                 + at_least(self, 1, "train_tokens", "valid_tokens", "test_tokens"))
        if not 2 <= self.branching <= self.vocab_size:  # as suites/text/synth.py MarkovSource requires
            found.append(f"branching must be in [2, vocab_size={self.vocab_size}], got {self.branching}")
        return found


def activation_penalties(out: LMOutput, alpha: float, beta: float,
                         ar_after_dropout: bool = False) -> torch.Tensor:
    """AR + TAR (Merity et al. 2017, section 4.6) on the last layer. TAR: on the output before output
    dropout in both codes. AR: on that same un-dropped output in fastai 0.7 (lm_rnn.py:13 @6768875 takes
    `dropped_hs[-1]`, the encoder's last output, which gets no dropout there, :109-110; the decoder drops
    it for itself only, :158); after output dropout in awd-lstm-lm (main.py:201, model.py:90-91 @1d466ec)."""
    penalty = out.logits.new_zeros(())
    if alpha:
        penalty = penalty + alpha * (out.last_dropped if ar_after_dropout else out.last_output).pow(2).mean()
    if beta and out.last_output.shape[0] > 1:
        penalty = penalty + beta * (out.last_output[1:] - out.last_output[:-1]).pow(2).mean()
    return penalty


def build_model(cfg, vocab_size: int) -> nn.Module:
    if cfg.model not in MODELS:
        raise UserError(f"task.model must be one of {MODELS}, got {cfg.model!r}")
    dropouts = Dropouts(input=cfg.dropout_input, output=cfg.dropout_output, weight=cfg.dropout_weight,
                        embedding=cfg.dropout_embedding, hidden=cfg.dropout_hidden)
    sizes = dict(vocab_size=vocab_size, emb_size=cfg.emb_size, hidden_size=cfg.hidden_size,
                 layers=cfg.layers, dropouts=dropouts, tie_weights=cfg.tie_weights,
                 zero_decoder_bias=cfg.zero_decoder_bias)
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


@torch.no_grad()
def blog_cross_entropy(model: nn.Module, ids: torch.Tensor, bptt: int) -> float:
    """Mean next-token cross-entropy as the blog measured its 68.7 / 69.6: sgugger/Adam-experiments
    lm_val_fns.py:34-53 @b1ede77 (`my_validate`, run on the final model, validation then test, by
    train_rnn.py:72-75). Batch 1 (:25); the state zeroed once (`model.reset()`, :44) and carried across
    windows starting at 0, bptt, 2 bptt, ...; only n // bptt windows (`__len__`, :22; loop :16), so the
    tail past the last multiple of bptt is dropped; the sum divided by bptt * (n // bptt) (:52), even when
    n is a multiple of bptt and the last window is one token short (:31)."""
    n = ids.numel()
    if n < bptt:  # ours: one window of the whole split, where the blog's would divide 0 by 0
        bptt = n - 1
    data, windows, state = ids.view(-1, 1), n // bptt, None
    total = data.new_zeros((), dtype=torch.float64)
    for start in range(0, min(windows * bptt, n - 1), bptt):  # and i < n - 1 (:16)
        length = min(bptt, n - 1 - start)
        out = model(data[start:start + length], state)
        state = out.state
        logits = out.logits.reshape(length, -1).float()
        total += F.cross_entropy(logits, data[start + 1:start + 1 + length, 0], reduction="sum")
    return total.item() / (bptt * windows)


class LanguageModelTask(Task):
    metrics = ("val_loss", "val_ppl", "test_ppl")
    final_metrics = ("val_ppl_blog", "test_ppl_blog")  # `evaluate_final`, the engine's last epoch

    def __init__(self, cfg, corpus: Corpus, device):
        if cfg.bptt_loader not in LOADERS:
            raise UserError(f"task.bptt_loader must be one of {LOADERS}, got {cfg.bptt_loader!r}")
        corpus = with_pad_token(corpus) if cfg.pad_token else corpus
        self.cfg, self.words, self.vocab_size = cfg, corpus.words, len(corpus.words)
        device = torch.device(device)
        self.train_data = batchify(corpus.train, cfg.batch_size).to(device)
        self.valid_data = batchify(corpus.valid, cfg.eval_batch_size).to(device)
        self.valid_ids = corpus.valid.to(device)  # batch 1
        self.with_test = metric_prefix(cfg.split) == "test"  # split=validation: never score the test set
        if self.with_test:
            self.test_data = batchify(corpus.test, cfg.test_batch_size).to(device)
            self.test_ids = corpus.test.to(device)
        cache = ("val_cache_ppl", "test_cache_ppl") if cfg.cache_window > 0 else ()
        finals = LanguageModelTask.final_metrics if cfg.blog_eval_bptt > 0 else ()
        self.metrics = self.evaluated((*LanguageModelTask.metrics, *cache))
        self.final_metrics = self.evaluated(finals)
        self._state = None  # the hidden state carried from one training window to the next

    def evaluated(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """`names` less the test-set metrics when the test set is not scored (split=validation)."""
        return tuple(n for n in names if self.with_test or not n.startswith("test_"))

    def build_model(self) -> nn.Module:
        return build_model(self.cfg, self.vocab_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> list[TextBatch]:
        cfg = self.cfg
        return bptt_batches(self.train_data, cfg.bptt, generator, cfg.variable_bptt, cfg.bptt_loader,
                            cfg.lr_scale_by_seq_len)

    def loss(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        out = model(batch.inputs, None if batch.reset_state else self._state)
        self._state = detach_state(out.state)
        cross_entropy = F.cross_entropy(out.logits.reshape(-1, self.vocab_size), batch.targets.reshape(-1))
        return cross_entropy + activation_penalties(out, self.cfg.ar_alpha, self.cfg.tar_beta,
                                                    self.cfg.ar_after_output_dropout)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        val_loss = mean_cross_entropy(model, self.valid_data, self.cfg.bptt)
        metrics = {"val_loss": val_loss, "val_ppl": math.exp(val_loss)}
        if self.with_test:
            metrics["test_ppl"] = math.exp(mean_cross_entropy(model, self.test_data, self.cfg.bptt))
        if self.cfg.cache_window > 0:
            cache = (self.cfg.bptt, self.cfg.cache_window, self.cfg.cache_theta, self.cfg.cache_lambda)
            metrics["val_cache_ppl"] = math.exp(cache_cross_entropy(model, self.valid_data, *cache))
            if self.with_test:
                metrics["test_cache_ppl"] = math.exp(cache_cross_entropy(model, self.test_data, *cache))
        return metrics

    def evaluate_final(self, model: nn.Module) -> dict[str, float]:
        """The blog's evaluation of its final model (`blog_cross_entropy`); nothing when turned off."""
        if not self.final_metrics:
            return {}
        bptt = self.cfg.blog_eval_bptt
        out = {"val_ppl_blog": math.exp(blog_cross_entropy(model, self.valid_ids, bptt))}
        if self.with_test:
            out["test_ppl_blog"] = math.exp(blog_cross_entropy(model, self.test_ids, bptt))
        return out


class WikiText2LM(LanguageModelTask):
    """`awd_lstm_wt2` / `qrnn_wt2`: WikiText-2 (v1, tokenized), vocabulary 33,278 (+ `_pad_`: 33,279)."""

    def __init__(self, cfg, device="cpu"):
        super().__init__(cfg, load_wikitext2(cfg.data_dir), device)


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
