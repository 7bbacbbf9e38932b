"""NT-ASGD: the switching rule, the averaging, evaluation with averages, and its saved state."""
import io

import pytest
import torch
from torch import nn

from runners.ntasgd import NTASGD


def awd_lstm_lm_switch_epoch(losses, nonmono):
    """awd-lstm-lm main.py's loop, transcribed: the epoch (1-based) after which it switches."""
    best_val_loss = []
    for epoch, val_loss in enumerate(losses, start=1):
        if len(best_val_loss) > nonmono and val_loss > min(best_val_loss[:-nonmono]):
            return epoch
        best_val_loss.append(val_loss)
    return None


@pytest.mark.parametrize("losses", [
    [5, 4, 3, 2.9, 2.8, 2.7, 2.75, 2.71, 2.72, 2.73, 2.74, 2.705, 2.8],  # plateau then worse
    [5, 4, 6, 6, 6, 6, 3, 2, 1],  # worse early, but not with more than nonmono epochs behind
    [5, 4, 3, 2, 1, 0.5, 0.4, 0.3],  # always improving: never switches
    [3, 3, 3, 3, 3, 3, 3.0001],
])
def test_switches_exactly_when_the_rule_says(losses):
    opt = NTASGD([nn.Parameter(torch.zeros(1))], lr=1.0, nonmono=5)
    switched = None
    for epoch, loss in enumerate(losses, start=1):
        opt.on_epoch_end(epoch, {"val_loss": loss})
        if opt.averaging and switched is None:
            switched = epoch
    assert switched == awd_lstm_lm_switch_epoch(losses, 5)
    assert opt.switched_at == switched


def test_rule_boundaries():
    opt = NTASGD([nn.Parameter(torch.zeros(1))], nonmono=2)
    for epoch, loss in enumerate([1.0, 2.0, 3.0], start=1):  # len(history) must exceed nonmono
        opt.on_epoch_end(epoch, {"val_loss": loss})
    assert not opt.averaging
    opt.on_epoch_end(4, {"val_loss": 1.0})  # equal to the old best is not worse
    assert not opt.averaging
    opt.on_epoch_end(5, {"val_loss": 1.5})  # worse than min(history[:-2]) = 1.0
    assert opt.averaging and opt.switched_at == 5
    with pytest.raises(KeyError, match="val_loss"):
        NTASGD([nn.Parameter(torch.zeros(1))]).on_epoch_end(1, {"val_ppl": 3.0})


def quadratic_steps(opt, param, steps, start=0):
    iterates = []
    for k in range(start, start + steps):
        opt.zero_grad()
        ((param - torch.tensor([1.0, -2.0])) ** 2 * (1 + k % 3)).sum().backward()
        opt.step()
        iterates.append(param.detach().clone())
    return iterates


def test_plain_sgd_then_average_of_the_iterates_after_the_switch():
    param = nn.Parameter(torch.tensor([3.0, 3.0]))
    opt = NTASGD([param], lr=0.1, nonmono=1)
    before = param.detach().clone()
    quadratic_steps(opt, param, 1)
    assert torch.allclose(param.detach(), before - 0.1 * 2 * (before - torch.tensor([1.0, -2.0])))
    for epoch, loss in enumerate([1.0, 0.5, 0.7, 0.8], start=1):  # 0.8 > min([1.0, 0.5])
        opt.on_epoch_end(epoch, {"val_loss": loss})
    assert opt.averaging
    iterates = quadratic_steps(opt, param, 7)
    current = param.detach().clone()
    with opt.evaluation_weights():
        assert torch.allclose(param, torch.stack(iterates).mean(0), atol=1e-6)
    assert torch.equal(param.detach(), current)  # training weights restored
    assert opt.averaged_steps == 7


def test_no_averages_to_swap_before_the_switch():
    param = nn.Parameter(torch.tensor([3.0, 3.0]))
    opt = NTASGD([param], lr=0.1)
    quadratic_steps(opt, param, 3)
    current = param.detach().clone()
    with opt.evaluation_weights():
        assert torch.equal(param.detach(), current)


def reload(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("interrupt_at", [2, 5, 6])  # before the switch, at it, while averaging
def test_state_round_trips_through_weights_only_checkpoint(interrupt_at):
    losses = [1.0, 0.9, 0.95, 0.97, 0.99, 1.2, 1.3, 1.4]

    def run(resume_after=None):
        param = nn.Parameter(torch.tensor([3.0, 3.0]))
        opt = NTASGD([param], lr=0.05, nonmono=2)
        for epoch, loss in enumerate(losses, start=1):
            quadratic_steps(opt, param, 4, start=epoch * 4)
            opt.on_epoch_end(epoch, {"val_loss": loss})
            if epoch == resume_after:
                saved = reload({"model": param.detach().clone(), "opt": opt.state_dict()})
                param = nn.Parameter(saved["model"])
                opt = NTASGD([param], lr=0.05, nonmono=2)
                opt.load_state_dict(saved["opt"])
        with opt.evaluation_weights():
            evaluated = param.detach().clone()
        return param.detach(), evaluated, opt

    plain, plain_eval, plain_opt = run()
    resumed, resumed_eval, resumed_opt = run(resume_after=interrupt_at)
    assert plain_opt.switched_at == resumed_opt.switched_at == awd_lstm_lm_switch_epoch(losses, 2) == 5
    assert plain_opt.history == resumed_opt.history
    assert torch.equal(plain, resumed) and torch.equal(plain_eval, resumed_eval)
    assert not torch.equal(plain, plain_eval)  # the averages are really in use
