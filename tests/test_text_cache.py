"""Neural cache pointer: what each step may point to, and how it mixes with the model."""
import pytest
import torch

from suites.text.awd_lstm import Dropouts, awd_lstm
from suites.text.cache import cache_cross_entropy, mixed_probabilities
from suites.text.tasks import mean_cross_entropy


def test_pointer_votes_for_the_words_that_followed_matching_states():
    vocab, dim = 5, 3
    keys = torch.eye(dim).repeat(2, 1).view(6, 1, dim)  # states e0 e1 e2 e0 e1 e2
    next_words = torch.tensor([[1], [2], [3], [4], [0], [1]])
    hidden = keys[-3:]  # the window is the last 3 steps
    uniform = torch.zeros(3, 1, vocab)
    probs = mixed_probabilities(uniform, hidden, keys, next_words, window=10, theta=50.0, lam=1.0)
    # Step at position 3 (state e0) sees positions 0..2; the matching state e0 at 0 was followed by 1.
    assert probs[0, 0].argmax().item() == 1 and probs[0, 0, 1] > 0.99
    # Position 4 (e1) sees 0..3: e1 at 1 was followed by 2 (not its own next word, 0).
    assert probs[1, 0].argmax().item() == 2
    assert torch.allclose(probs.sum(-1), torch.ones(3, 1))


def test_window_limits_what_is_visible_and_the_first_step_uses_the_model():
    keys = torch.eye(4).view(4, 1, 4)
    next_words = torch.tensor([[0], [1], [2], [3]])
    logits = torch.zeros(4, 1, 4)
    probs = mixed_probabilities(logits, keys, keys, next_words, window=1, theta=0.0, lam=1.0)
    assert torch.allclose(probs[0, 0], torch.full((4,), 0.25))  # nothing cached yet: model only
    for step in range(1, 4):  # window 1: only the previous step, whatever the scores
        assert probs[step, 0, step - 1] == pytest.approx(1.0)


def test_zero_lambda_is_the_plain_model_and_the_cache_helps_on_repeats():
    torch.manual_seed(0)
    model = awd_lstm(20, 8, 16, 2, Dropouts()).eval()
    pattern = torch.randint(0, 20, (13,))
    data = pattern.repeat(12).view(-1, 1)  # a 13-word sentence, over and over
    plain = mean_cross_entropy(model, data, bptt=10)
    assert cache_cross_entropy(model, data, 10, 100, 0.662, 0.0) == pytest.approx(plain, rel=1e-5)
    assert cache_cross_entropy(model, data, 10, 100, 5.0, 0.5) < plain - 0.3
