"""A synthetic corpus whose best achievable perplexity is known exactly: the mini twins' data.

The source is a second-order Markov chain over `vocab_size` symbols: after the pair (a, b), the next
symbol is one of `successors` symbols chosen for that pair, with integer weights; so
P(c | a, b) = w_abc / sum_c' w_abc'. Every choice comes from SplitMix64, a counter-based integer hash,
and sampling uses integer arithmetic only, so the corpus is bit-identical on every machine, OS, NumPy
and Python version (no float rounding and no library RNG is involved).

Floor. For a stationary source the expected per-token cross-entropy of any predictor, however it uses
the past, is at least the source's entropy rate H (Gibbs' inequality applied to each conditional;
for a second-order chain H = sum_ab pi(a, b) H(P(. | a, b)), pi the stationary distribution of the
pair chain). So exp(H) is the lowest perplexity any model can expect on held-out text, reached only by
the true conditional probabilities; a finite validation split scatters around it by about
sd/sqrt(tokens). A target `margin` above the floor asks the model to be within that much of perfect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .data import Corpus

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(counters: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of uint64 counters (Steele et al. 2014), vectorized; uint64
    arithmetic wraps modulo 2**64 exactly as the reference C code."""
    z = counters.astype(np.uint64) * np.uint64(GOLDEN_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_words(seed: int, stream: int, count: int) -> list[int]:
    """`count` 64-bit random integers of stream `stream` under `seed` (as Python ints)."""
    base = (seed * 1_000_003 + stream) << 32  # streams of up to 2**32 draws never overlap
    with np.errstate(over="ignore"):
        return splitmix64(np.arange(base + 1, base + 1 + count, dtype=np.uint64)).tolist()


def word_stream(seed: int, stream: int, block: int = 4096):
    """The same words as `random_words`, endlessly, drawn a block at a time."""
    start = 0
    while True:
        base = (seed * 1_000_003 + stream) << 32
        with np.errstate(over="ignore"):
            yield from splitmix64(np.arange(base + 1 + start, base + 1 + start + block,
                                            dtype=np.uint64)).tolist()
        start += block


def below(word: int, bound: int) -> int:
    """A uniform integer in [0, bound) from a 64-bit word (Lemire's multiply-shift)."""
    return (word * bound) >> 64


@dataclass(frozen=True)
class MarkovSource:
    """Second-order chain: `successors[a][b]` lists (symbol, integer weight) pairs."""

    vocab_size: int
    successors: tuple

    @classmethod
    def generate(cls, vocab_size: int, branching: int, seed: int, max_weight: int = 8) -> "MarkovSource":
        if not 2 <= branching <= vocab_size:
            raise ValueError(f"branching must be in [2, vocab_size], got {branching}")
        words = word_stream(seed, 0)
        table = []
        for _ in range(vocab_size):
            row = []
            for _ in range(vocab_size):
                symbols: list[int] = []
                while len(symbols) < branching:  # distinct successors, drawn without replacement
                    symbol = below(next(words), vocab_size)
                    if symbol not in symbols:
                        symbols.append(symbol)
                weights = [1 + below(next(words), max_weight) for _ in symbols]
                row.append(tuple(zip(symbols, weights)))
            table.append(tuple(row))
        return cls(vocab_size, tuple(table))

    def probabilities(self) -> np.ndarray:
        """P[a, b, c] = P(next = c | previous two = a, b)."""
        v = self.vocab_size
        probs = np.zeros((v, v, v))
        for a in range(v):
            for b in range(v):
                total = sum(w for _, w in self.successors[a][b])
                for c, w in self.successors[a][b]:
                    probs[a, b, c] = w / total
        return probs

    def stationary_pairs(self, tolerance: float = 1e-14, max_steps: int = 100_000) -> np.ndarray:
        """pi[a, b], the stationary distribution of the pair chain (a, b) -> (b, c), by power iteration
        from uniform; raises if it does not converge (a periodic or split chain has no single floor)."""
        probs = self.probabilities()
        pi = np.full((self.vocab_size,) * 2, 1.0 / self.vocab_size ** 2)
        for _ in range(max_steps):
            nxt = np.einsum("ab,abc->bc", pi, probs)
            if np.abs(nxt - pi).sum() < tolerance:
                return nxt
            pi = nxt
        raise ValueError("the pair chain did not converge to one stationary distribution")

    def entropy_rate(self) -> float:
        """H in nats per token: sum_ab pi(a, b) H(P(. | a, b))."""
        probs = self.probabilities()
        with np.errstate(divide="ignore", invalid="ignore"):
            conditional = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=2)
        return float((self.stationary_pairs() * conditional).sum())

    def floor_ppl(self) -> float:
        return math.exp(self.entropy_rate())

    def sample(self, count: int, seed: int, burn_in: int = 100) -> list[int]:
        """`count` symbols after `burn_in` discarded ones, starting from the pair (0, 0)."""
        cumulative = [[_cumulative(self.successors[a][b]) for b in range(self.vocab_size)]
                      for a in range(self.vocab_size)]
        previous, current, out = 0, 0, []
        for word in random_words(seed, 1, burn_in + count):
            symbols, bounds = cumulative[previous][current]
            draw = below(word, bounds[-1])
            nxt = symbols[next(i for i, bound in enumerate(bounds) if draw < bound)]
            previous, current = current, nxt
            out.append(nxt)
        return out[burn_in:]


def _cumulative(pairs) -> tuple[list[int], list[int]]:
    symbols, bounds, total = [], [], 0
    for symbol, weight in pairs:
        total += weight
        symbols.append(symbol)
        bounds.append(total)
    return symbols, bounds


@lru_cache(maxsize=8)
def synthetic_corpus(vocab_size: int, branching: int, seed: int, train_tokens: int, valid_tokens: int,
                     test_tokens: int) -> tuple[Corpus, float]:
    """One stream cut into train / valid / test, and the floor perplexity exp(H)."""
    source = MarkovSource.generate(vocab_size, branching, seed)
    stream = torch.tensor(source.sample(train_tokens + valid_tokens + test_tokens, seed), dtype=torch.int64)
    train, valid, test = stream.split([train_tokens, valid_tokens, test_tokens])
    corpus = Corpus(train=train.clone(), valid=valid.clone(), test=test.clone(),
                    words=[f"s{i}" for i in range(vocab_size)])
    return corpus, source.floor_ppl()
