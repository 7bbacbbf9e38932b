"""The synthetic source: reproducible bits, the exact entropy rate, and the floor behind the targets."""
import math

import numpy as np
import pytest

from suites.text.synth import MarkovSource, below, random_words, splitmix64, synthetic_corpus
from conftest import compose_cfg


def test_splitmix64_matches_the_reference_outputs():
    # SplitMix64 seeded with 0 (Vigna's splitmix64.c): its first three outputs.
    assert splitmix64(np.array([1, 2, 3], dtype=np.uint64)).tolist() == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_bounded_draws_are_uniform_and_in_range():
    draws = [below(w, 10) for w in random_words(seed=5, stream=0, count=20_000)]
    counts = np.bincount(draws, minlength=10)
    assert min(draws) >= 0 and max(draws) < 10
    assert counts.min() > 1800 and counts.max() < 2200


def test_corpus_is_pinned():
    """Identical on every machine: any change to the generator changes these numbers."""
    corpus, floor = synthetic_corpus(10, 2, 0, 40_000, 10_000, 10_000)
    assert corpus.train[:20].tolist() == FIRST_TRAIN_TOKENS
    assert int(corpus.train.sum()) == TRAIN_SUM and int(corpus.test.sum()) == TEST_SUM
    assert floor == pytest.approx(1.8473418524866505, rel=1e-12)


FIRST_TRAIN_TOKENS = [1, 1, 1, 4, 3, 1, 3, 8, 8, 0, 7, 9, 3, 1, 9, 5, 8, 2, 5, 9]
TRAIN_SUM, TEST_SUM = 162466, 40464


def test_uniform_successors_have_entropy_log_branching():
    source = MarkovSource.generate(6, 3, seed=1, max_weight=1)  # every weight 1: uniform over 3
    assert source.entropy_rate() == pytest.approx(math.log(3), abs=1e-12)


def test_entropy_rate_is_what_the_true_model_scores_on_generated_text():
    source = MarkovSource.generate(10, 3, seed=2)
    tokens = source.sample(50_000, seed=2)
    probs = source.probabilities()
    nll = -np.mean([math.log(probs[a, b, c]) for a, b, c in zip(tokens, tokens[1:], tokens[2:])])
    assert nll == pytest.approx(source.entropy_rate(), abs=0.01)  # sd of the mean ~ 0.003
    assert min(probs[a, b, c] for a, b, c in zip(tokens, tokens[1:], tokens[2:])) > 0


def test_stationary_distribution_is_stationary():
    source = MarkovSource.generate(8, 2, seed=0)
    pi = source.stationary_pairs()
    assert pi.sum() == pytest.approx(1.0)
    assert np.allclose(np.einsum("ab,abc->bc", pi, source.probabilities()), pi, atol=1e-12)


@pytest.mark.parametrize("task", ["synth_awd_lstm", "synth_qrnn"])
def test_task_target_is_the_stated_margin_above_the_floor(task):
    t = compose_cfg([f"task={task}"]).task
    _, floor = synthetic_corpus(t.vocab_size, t.branching, t.source_seed, t.train_tokens,
                                t.valid_tokens, t.test_tokens)
    assert t.target.metric == "val_ppl" and t.target.mode == "min"
    assert t.target.value == pytest.approx(floor * (1 + t.floor_margin), rel=1e-4)
