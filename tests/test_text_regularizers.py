"""AWD-LSTM's regularizers: what each one drops, when, and how it scales."""
import pytest
import torch
from torch import nn

from suites.text.regularizers import (DropConnect, EmbeddingDropout, LockedDropout, WeightDropLSTM,
                                      Zoneout, scaled_keep_mask)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.35])
def test_keep_mask_is_scaled_bernoulli(keep):
    torch.manual_seed(0)
    mask = scaled_keep_mask((1000, 1000), keep, torch.empty(0))
    kept = mask > 0
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / keep], rel=2e-5)  # keep in steps of 2**-16
    assert kept.float().mean().item() == pytest.approx(keep, abs=0.002)  # sd ~ 0.0005
    assert mask.mean().item() == pytest.approx(1.0, abs=0.005)  # unbiased
    # Independent draws: neighbours (bits of the same int64 word) are kept together keep**2 of the time.
    flat = kept.flatten().float()
    assert (flat[0::2] * flat[1::2]).mean().item() == pytest.approx(keep ** 2, abs=0.003)
    assert not torch.equal(kept[:500], kept[500:])


def test_keep_mask_follows_the_torch_seed():
    torch.manual_seed(3)
    first = scaled_keep_mask((64, 64), 0.5, torch.empty(0))
    torch.manual_seed(3)
    assert torch.equal(first, scaled_keep_mask((64, 64), 0.5, torch.empty(0)))


def test_locked_dropout_shares_one_mask_across_time():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(7, 3, 50))
    assert torch.equal(out, out[:1].expand_as(out))  # same mask at every step
    assert not torch.equal(out[:, 0], out[:, 1])  # a different one per sequence
    assert set(out.unique().tolist()) == {0.0, 2.0}
    x = torch.randn(7, 3, 50)
    assert torch.equal(drop.eval()(x), x)


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    vocab, dim = 40, 6
    embedding = nn.Embedding(vocab, dim)
    drop = EmbeddingDropout(vocab, 0.5).train()
    words = torch.arange(vocab).repeat(5).view(10, 20)  # every word 5 times
    out = drop(words, embedding(words))
    dropped = (out == 0).all(dim=-1)
    assert 0 < dropped.float().mean() < 1
    for w in range(vocab):  # a word is dropped everywhere or nowhere, kept ones scaled by 2
        rows = out[words == w]
        assert dropped[words == w].all() or torch.allclose(rows, 2 * embedding.weight[w].expand_as(rows))
    assert torch.equal(drop.eval()(words, embedding(words)), embedding(words))


def test_dropconnect_new_mask_each_forward_none_in_eval():
    torch.manual_seed(0)
    weight = torch.randn(30, 20)
    drop = DropConnect(0.5).train()
    first, second = drop(weight), drop(weight)
    assert not torch.equal(first == 0, second == 0)
    assert torch.allclose(first[first != 0], 2 * weight[first != 0])
    assert drop.eval()(weight) is weight


def test_weight_drop_lstm_uses_a_fresh_dropped_matrix_each_training_forward():
    torch.manual_seed(0)
    layer = WeightDropLSTM(5, 8, weight_p=0.5).train()
    x = torch.randn(6, 3, 5)
    out1, _ = layer(x)
    out2, _ = layer(x)
    assert not torch.allclose(out1, out2)
    # The output is exactly nn.LSTM's with the dropped hidden-to-hidden matrix: replay the mask.
    torch.manual_seed(1)
    out, _ = layer(x)
    torch.manual_seed(1)
    dropped = layer.weight_drop(layer.lstm.weight_hh_l0)
    reference = nn.LSTM(5, 8)
    reference.load_state_dict({**layer.lstm.state_dict(), "weight_hh_l0": dropped.detach()})
    assert torch.allclose(out, reference(x)[0], atol=1e-6)
    # Gradients reach the raw weight, through the mask (zero where dropped).
    torch.manual_seed(1)
    layer.zero_grad()
    layer(x)[0].sum().backward()
    grad = layer.lstm.weight_hh_l0.grad
    assert (grad[dropped == 0] == 0).all() and (grad[dropped != 0] != 0).float().mean() > 0.9


def test_weight_drop_lstm_in_eval_is_the_plain_lstm():
    torch.manual_seed(0)
    layer = WeightDropLSTM(5, 8, weight_p=0.5).eval()
    x = torch.randn(6, 3, 5)
    assert torch.equal(layer(x)[0], layer(x)[0])
    assert torch.equal(layer(x)[0], layer.lstm(x)[0])
    assert list(layer.state_dict()) == [f"lstm.{k}" for k in nn.LSTM(5, 8).state_dict()]


def test_zoneout_keeps_state_for_zoned_units():
    torch.manual_seed(0)
    zone = Zoneout(0.3).train()
    forget = torch.full((1000, 10), 0.2)
    out = zone(forget)
    assert out.unique().tolist() == pytest.approx([0.2, 1.0])  # zoned units: f = 1, keep state
    assert (out == 1).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert torch.allclose(zone.eval()(forget), torch.full_like(forget, 1 - 0.8 * 0.7))
