"""Each optimizer against a hand-written reference of its formula, over several steps."""
import math

import pytest
import torch
from torch import nn

from runners.optimizers import apply_weight_decay, build_optimizer, current_momentum, set_lr, set_momentum

STEPS, LR, WD = 6, 0.05, 0.1


@pytest.fixture(autouse=True)
def float64():
    # Float32 rounding, amplified by the normalisation layer, would hide a formula error at 1e-5.
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


class Toy(nn.Module):
    """A weight (decayed) and a bias (not decayed by default) on a fixed quadratic problem."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.norm = nn.LayerNorm(2)

    def forward(self, x):
        return self.norm(self.lin(x))

    def param_groups(self):
        return {"body": list(self.lin.parameters()), "head": list(self.norm.parameters())}


def loss_of(model):
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    return ((model(x) - 0.5) ** 2).sum()


def train(cfg, wd_mode, steps=STEPS, lr=LR):
    model = Toy()
    opt = build_optimizer(cfg, model, lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss_of(model).backward()
        apply_weight_decay(opt, wd_mode)
        opt.step()
        history.append(opt)
    return model, opt


def reference_adam(wd, mode, amsgrad=False, betas=(0.9, 0.99), eps=1e-8, decay_all=False):
    """Adam by its formula. mode 'l2': g += wd*p; 'decoupled': p -= lr*wd*p before the step."""
    model = Toy()
    params = list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    vmax = [torch.zeros_like(p) for p in params]
    for t in range(1, STEPS + 1):
        model.zero_grad()
        loss_of(model).backward()
        with torch.no_grad():
            for i, p in enumerate(params):
                decay = wd if (decay_all or p.ndim > 1) else 0.0
                g = p.grad.clone()
                if mode == "l2":
                    g += decay * p
                else:
                    p -= LR * decay * p
                m[i] = betas[0] * m[i] + (1 - betas[0]) * g
                v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
                vmax[i] = torch.maximum(vmax[i], v[i])
                vhat = (vmax[i] if amsgrad else v[i]) / (1 - betas[1] ** t)
                p -= LR * (m[i] / (1 - betas[0] ** t)) / (vhat.sqrt() + eps)
    return model


def reference_sgd(wd, momentum, nesterov):
    model = Toy()
    params = list(model.parameters())
    buf = [None] * len(params)
    for _ in range(STEPS):
        model.zero_grad()
        loss_of(model).backward()
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad + (wd if p.ndim > 1 else 0.0) * p
                buf[i] = g.clone() if buf[i] is None else momentum * buf[i] + g
                p -= LR * (g + momentum * buf[i] if nesterov else buf[i])
    return model


def adam_cfg(wd, mode, **kw):
    return {"_target_": "torch.optim.Adam", "weight_decay": wd, "wd_mode": mode,
            "kwargs": {"betas": [0.9, 0.99], "eps": 1e-8, **kw}}


def assert_same(a, b, tol=1e-9):
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=tol, rtol=tol)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_formula(nesterov):
    cfg = {"_target_": "torch.optim.SGD", "weight_decay": WD, "wd_mode": "l2",
           "kwargs": {"momentum": 0.9, "nesterov": nesterov}}
    model, _ = train(cfg, "l2")
    assert_same(model, reference_sgd(WD, 0.9, nesterov))


@pytest.mark.parametrize("mode", ["l2", "decoupled"])
def test_adam_family_matches_formula(mode):
    model, _ = train(adam_cfg(WD, mode), mode)
    assert_same(model, reference_adam(WD, mode))


def test_amsgrad_matches_formula_and_vhat_never_decreases():
    model = Toy()
    opt = build_optimizer(adam_cfg(WD, "decoupled", amsgrad=True), model, LR)
    previous = None
    for step in range(STEPS):
        opt.zero_grad()
        # A loss that shrinks makes v fall while v_hat must hold its maximum.
        (loss_of(model) * (0.3 ** step)).backward()
        apply_weight_decay(opt, "decoupled")
        opt.step()
        vhat = [opt.state[p]["max_exp_avg_sq"].clone() for p in model.parameters()]
        if previous is not None:
            assert all((now >= before).all() for now, before in zip(vhat, previous))
        previous = vhat
    model2, _ = train(adam_cfg(WD, "decoupled", amsgrad=True), "decoupled")
    assert_same(model2, reference_adam(WD, "decoupled", amsgrad=True))


def test_adamw_equals_torch_adamw():
    model, _ = train({**adam_cfg(WD, "decoupled"), "no_decay_bias_norm": False}, "decoupled")
    ref = Toy()
    opt = torch.optim.AdamW(ref.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=WD)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(ref).backward()
        opt.step()
    assert_same(model, ref, tol=1e-9)  # torch.optim.AdamW decays every parameter, as asked here


def test_adam_l2_and_adamw_differ_with_decay_and_agree_without():
    l2, _ = train(adam_cfg(WD, "l2"), "l2")
    dec, _ = train(adam_cfg(WD, "decoupled"), "decoupled")
    assert (l2.lin.weight - dec.lin.weight).abs().max() > 1e-4
    l2_0, _ = train(adam_cfg(0.0, "l2"), "l2")
    dec_0, _ = train(adam_cfg(0.0, "decoupled"), "decoupled")
    assert_same(l2_0, dec_0, tol=0)


def test_bias_and_norm_weights_not_decayed_unless_asked():
    model = Toy()
    opt = build_optimizer(adam_cfg(WD, "decoupled"), model, LR)
    decays = {id(p): g["decay"] for g in opt.param_groups for p in g["params"]}
    assert decays[id(model.lin.weight)] == WD
    assert decays[id(model.lin.bias)] == 0 and decays[id(model.norm.weight)] == 0
    opt = build_optimizer({**adam_cfg(WD, "decoupled"), "no_decay_bias_norm": False}, Toy(), LR)
    assert all(g["decay"] == WD for g in opt.param_groups)


def test_group_lr_multipliers_scale_with_schedule_and_freeze():
    model = Toy()
    cfg = {**adam_cfg(0.0, "l2"), "group_lr_mult": {"body": 1 / 9}, "freeze": ["head"]}
    opt = build_optimizer(cfg, model, 3e-3)
    set_lr(opt, 0.5)
    lrs = {g["group"]: g["lr"] for g in opt.param_groups}
    assert lrs["body"] == pytest.approx(3e-3 / 9 * 0.5) and lrs["head"] == pytest.approx(1.5e-3)
    assert not model.norm.weight.requires_grad and model.lin.weight.requires_grad
    before = model.norm.weight.clone()
    loss_of(model).backward()
    opt.step()
    assert torch.equal(model.norm.weight, before)  # frozen: untouched


def test_scheduled_momentum_goes_to_beta1_or_sgd_momentum():
    adam = build_optimizer({**adam_cfg(0.0, "l2"), "cycle_momentum": True}, Toy(), LR)
    set_momentum(adam, 0.85)
    assert all(g["betas"] == (0.85, 0.99) for g in adam.param_groups)
    sgd = build_optimizer({"_target_": "torch.optim.SGD", "kwargs": {"momentum": 0.9}, "cycle_momentum": True},
                          Toy(), LR)
    set_momentum(sgd, 0.95)
    assert all(g["momentum"] == 0.95 for g in sgd.param_groups)


def test_without_cycle_momentum_the_class_keeps_its_own():
    """cycle_momentum false (the schema's default): a schedule's momentum is not applied."""
    adam = build_optimizer(adam_cfg(0.0, "l2"), Toy(), LR)
    set_momentum(adam, 0.85)
    assert all(g["betas"] == (0.9, 0.99) for g in adam.param_groups) and current_momentum(adam) == 0.9


def test_unknown_group_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown parameter group.*\['neck'\].*\['body', 'head'\]"):
        build_optimizer({**adam_cfg(0.0, "l2"), "freeze": ["neck"]}, Toy(), LR)
