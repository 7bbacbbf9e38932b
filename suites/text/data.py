"""Word-level corpora as awd-lstm-lm reads them, and its batching.

Tokens: each line split on whitespace plus an `<eos>`, every line (blank ones too: they are part of the
published token counts). Vocabulary: the training split's words by frequency (ties by first
occurrence). torchtext is not used: its last release (0.18) cannot be imported with current torch.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from results.errors import DatasetMissing

from ..base import data_root

EOS, UNK, PAD = "<eos>", "<unk>", "_pad_"
SPLITS = ("train", "valid", "test")
WIKITEXT_ENV = "ONECYCLE_WIKITEXT_DIR"
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-v1")


@dataclass
class Corpus:
    """Token ids of the three splits (1-d int64) and the vocabulary (id -> word)."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    words: list[str]


def tokenize(lines: Iterable[str]) -> list[str]:
    return [word for line in lines for word in (*line.split(), EOS)]


def build_corpus(lines_by_split: dict[str, Iterable[str]]) -> Corpus:
    """Vocabulary from the training split; a held-out word outside it becomes <unk> (WikiText has
    none: its rare words are already <unk>), and is an error when there is no <unk> to map it to."""
    tokens = {split: tokenize(lines_by_split[split]) for split in SPLITS}
    counts = Counter(tokens["train"])
    words = sorted(counts, key=lambda w: -counts[w])  # stable sort: ties keep first occurrence
    index = {word: i for i, word in enumerate(words)}

    def ids(split: str) -> torch.Tensor:
        unknown = index.get(UNK)
        missing = [w for w in tokens[split] if w not in index]
        if missing and unknown is None:
            raise ValueError(f"{split} split has {len(missing)} words not in the training vocabulary "
                             f"(e.g. {missing[0]!r}) and the vocabulary has no {UNK}")
        return torch.tensor([index.get(w, unknown) for w in tokens[split]], dtype=torch.int64)

    return Corpus(train=ids("train"), valid=ids("valid"), test=ids("test"), words=words)


def with_pad_token(corpus: Corpus) -> Corpus:
    """The blog's vocabulary: `_pad_` inserted at index 0, every other id one higher. It never occurs in
    the text, so it is never an input or a target (sgugger/Adam-experiments train_rnn.py:48-49 @b1ede77:
    `itos = [o for o,c in cnt.most_common()]; itos.insert(0,'_pad_')`)."""
    return Corpus(train=corpus.train + 1, valid=corpus.valid + 1, test=corpus.test + 1,
                  words=[PAD, *corpus.words])


def default_dir() -> Path:
    """$ONECYCLE_WIKITEXT_DIR, else <data root>/wikitext-2 (where `make data` puts it)."""
    configured = os.environ.get(WIKITEXT_ENV)
    return Path(configured).expanduser() if configured else data_root(None) / "wikitext-2"


def read_wikitext_dir(directory: Path) -> dict[str, list[str]]:
    paths = {split: directory / f"wiki.{split}.tokens" for split in SPLITS}
    absent = [p.name for p in paths.values() if not p.is_file()]
    if absent:
        raise DatasetMissing(
            f"WikiText-2 not available: {directory} lacks {', '.join(absent)}. Fetch and verify it with "
            f"`make data TASKS=awd_lstm_wt2` (the HF hub's {WIKITEXT_HUB[0]} {WIKITEXT_HUB[1]}), or put "
            f"wiki.train.tokens, wiki.valid.tokens and wiki.test.tokens (wikitext-2-v1.zip, Merity et al. "
            f"2016) in a directory and set task.data_dir=DIR or {WIKITEXT_ENV}=DIR.")
    return {split: path.read_text(encoding="utf-8").splitlines() for split, path in paths.items()}


def corpus_counts(lines_by_split: dict[str, Iterable[str]]) -> dict[str, int]:
    """The published counts (Merity et al. 2016, Table 1), counted as awd-lstm-lm counts: tokens per split
    with one <eos> per line, blank lines included, and the training vocabulary with <eos> and <unk>
    (salesforce/awd-lstm-lm data.py:41 @1d466ec: `words = line.split() + ['<eos>']`)."""
    tokens = {split: tokenize(lines_by_split[split]) for split in SPLITS}
    return {"vocabulary": len(set(tokens["train"])), **{split: len(t) for split, t in tokens.items()}}


def load_wikitext2(data_dir: str | None = None) -> Corpus:
    """From `data_dir`, else default_dir(); disk only (`make data` fetches it)."""
    return build_corpus(read_wikitext_dir(Path(data_dir).expanduser() if data_dir else default_dir()))


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(rows, batch_size): the stream cut into batch_size contiguous columns, the tail dropped."""
    rows = ids.numel() // batch_size
    if rows < 2:
        raise ValueError(f"{ids.numel()} tokens cannot fill 2 rows of batch size {batch_size}")
    return ids[:rows * batch_size].view(batch_size, rows).t().contiguous()


@dataclass
class TextBatch:
    """One BPTT window: inputs and next-word targets (seq_len, batch), views of the device data."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lr_scale: float = 1.0  # the engine scales the LR by it: seq_len / bptt, or 1
    reset_state: bool = False  # first window of an epoch: start from a zero hidden state


LOADERS = ("fastai", "awd_lstm")


def _draw_length(bptt: int, generator: torch.Generator) -> int:
    """~N(bptt, 5), around bptt/2 with probability 0.05, at least 5 (both loaders draw alike)."""
    mean = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
    return max(5, int(torch.normal(float(mean), 5.0, (), generator=generator).item()))


def bptt_lengths(rows: int, bptt: int, generator: torch.Generator, variable: bool = True) -> list[int]:
    """awd-lstm-lm's window lengths over `rows` rows (salesforce/awd-lstm-lm main.py:179-182 @1d466ec):
    drawn by `_draw_length` until the data runs out; fixed bptt when not `variable`. The last window
    is cut to the data."""
    lengths, start = [], 0
    while start < rows - 2:
        length = min(_draw_length(bptt, generator) if variable else bptt, rows - 1 - start)
        lengths.append(length)
        start += length
    return lengths


def fastai_lengths(rows: int, bptt: int, generator: torch.Generator) -> list[int]:
    """fastai 0.7 `LanguageModelLoader.__iter__` (fastai/text.py:161-174 @6768875): the first window is
    bptt + 25 tokens, later ones `_draw_length`; the epoch ends after `rows // bptt - 1` windows (its
    __len__), so the stream's last ~3% goes unseen. At least one window, so a tiny stream still trains."""
    lengths, start, count = [], 0, max(rows // bptt - 1, 1)
    while start < rows - 1 and len(lengths) < count:
        length = min(bptt + 25 if start == 0 else _draw_length(bptt, generator), rows - 1 - start)
        lengths.append(length)
        start += length
    return lengths


def bptt_batches(data: torch.Tensor, bptt: int, generator: torch.Generator, variable: bool = True,
                 loader: str = "awd_lstm", scale_lr: bool = True) -> list[TextBatch]:
    """An epoch's windows over batchified `data`, in order (the hidden state flows between them).
    `loader`: whose window rule; `scale_lr`: the LR times seq_len / bptt, as awd-lstm-lm main.py:186-187
    @1d466ec does (fastai 0.7 never does: model.py:64-70 @6768875 steps at the group's LR)."""
    if loader not in LOADERS:
        raise ValueError(f"bptt loader must be one of {LOADERS}, got {loader!r}")
    rows = data.shape[0]
    if loader == "fastai" and variable:
        lengths = fastai_lengths(rows, bptt, generator)
    else:
        lengths = bptt_lengths(rows, bptt, generator, variable)
    batches, start = [], 0
    for length in lengths:
        batches.append(TextBatch(data[start:start + length], data[start + 1:start + 1 + length],
                                 lr_scale=length / bptt if scale_lr else 1.0, reset_state=start == 0))
        start += length
    return batches
