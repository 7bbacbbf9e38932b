import math

import pytest
import torch

from runners.schedules import (annealing_cos, build_schedule, combined_cos, constant, exponential, one_cycle,
                               one_cycle_phases, step)


def test_combined_cos_matches_fastai_known_values():
    # fastai's own test: combined_cos(0.25, 0.5, 1., 0.) at [0, .1, .25, .5, 1]
    sched = combined_cos(0.25, 0.5, 1.0, 0.0)
    got = [sched(p) for p in (0, 0.1, 0.25, 0.5, 1.0)]
    assert got == pytest.approx([0.5, 0.67275, 1.0, 0.75, 0.0], abs=1e-5)


def test_annealing_cos_endpoints_and_midpoint():
    fn = annealing_cos(2.0, 4.0)
    assert (fn(0.0), fn(0.5), fn(1.0)) == pytest.approx((2.0, 3.0, 4.0))


def test_one_cycle_fastai_v2_defaults():
    sched = one_cycle()  # pct 0.25, div 25, div_final 1e5, moms 0.95/0.85/0.95
    assert sched(0.0) == pytest.approx((1 / 25, 0.95))
    assert sched(0.25) == pytest.approx((1.0, 0.85))
    assert sched(1.0) == pytest.approx((1e-5, 0.95))
    lrs = [sched(p / 100)[0] for p in range(101)]
    peak = lrs.index(max(lrs))
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))  # rises to the peak
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # then only falls


@pytest.mark.parametrize("total,pct", [(100, 0.3), (250, 0.25), (37, 0.4)])
def test_one_cycle_agrees_with_torch_onecyclelr(total, pct):
    """Same shape as torch's OneCycleLR once positions are mapped as torch maps them: its phase
    ends at step pct*total - 1 and the run at step total - 1; its final LR is initial/final_div."""
    div, final_div = 25.0, 1e4
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=pct,
                                              div_factor=div, final_div_factor=final_div)
    ours = one_cycle(pct_start=(pct * total - 1) / (total - 1), div=div, div_final=div * final_div)
    for i in range(total):
        lr, mom = ours(i / (total - 1))
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-6, abs=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(mom, rel=1e-6)
        opt.step()
        if i < total - 1:
            ref.step()


def test_one_cycle_phases_blog_cifar_values():
    """claims.md: 30 epochs as 13.875/13.875/2.25, div 10, lin_end: 3e-4 -> 3e-3 -> 3e-4 -> 3e-6."""
    sched = one_cycle_phases(13.875, 0, 13.875, 2.25, div=10, moms=(0.95, 0.85))
    lr_max = 3e-3
    at = lambda epoch: sched(epoch / 30)
    assert at(0)[0] * lr_max == pytest.approx(3e-4)
    assert at(13.875)[0] * lr_max == pytest.approx(3e-3)
    assert at(27.75)[0] * lr_max == pytest.approx(3e-4)
    assert at(30)[0] * lr_max == pytest.approx(3e-6)
    assert at(0)[1] == pytest.approx(0.95) and at(13.875)[1] == pytest.approx(0.85)
    assert at(6.9375)[1] == pytest.approx(0.90)  # linear, half way up
    assert {round(at(e)[1], 12) for e in (27.75, 28.5, 29.9, 30)} == {0.95}  # flat in the last phase


def test_one_cycle_phases_lm_shape():
    """claims.md LM schedule: 7.5 up, 37.5 flat, 37.5 down, 7.5 cosine to 0; beta1 0.8 -> 0.7."""
    sched = one_cycle_phases(7.5, 37.5, 37.5, 7.5, div=10, moms=(0.8, 0.7), final_shape="cosine")
    at = lambda epoch: sched(epoch / 90)
    assert at(0) == pytest.approx((0.1, 0.8))
    assert at(7.5) == pytest.approx((1.0, 0.7))
    assert at(30) == pytest.approx((1.0, 0.7)) and at(45) == pytest.approx((1.0, 0.7))
    assert at(82.5) == pytest.approx((0.1, 0.8))
    assert at(86.25)[0] == pytest.approx(0.05)  # cosine midpoint
    assert at(90) == pytest.approx((0.0, 0.8))


def test_step_and_constant_are_budget_free():
    s = step([30, 60], gamma=0.2, total_epochs=90)
    assert [s(e / 90)[0] for e in (0, 29.9, 30, 59, 60, 89)] == pytest.approx([1, 1, .2, .2, .04, .04])
    longer = build_schedule({"kind": "step", "milestones": [30, 60], "gamma": 0.2}, 200)
    assert longer.budget_free and longer(45.0)[0] == pytest.approx(0.2)  # same LR at the same epoch
    assert constant(0.9)(0.7) == (1.0, 0.9)
    assert not build_schedule({"kind": "one_cycle"}, 10).budget_free


def test_build_schedule_is_function_of_epochs_done():
    built = build_schedule({"kind": "one_cycle", "pct_start": 0.25}, total_epochs=8)
    assert built(2.0) == pytest.approx(one_cycle()(0.25))
    with pytest.raises(ValueError, match="unknown schedule kind"):
        build_schedule({"kind": "warp"}, 8)


def test_exponential_ramp_is_geometric_and_leaves_momentum_alone():
    """The LR range test's ramp: start -> end with a constant ratio between equal steps of progress."""
    ramp = exponential(1e-7, 10.0)
    lrs = [ramp(i / 8)[0] for i in range(9)]
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([10.0] * 8)  # a decade a step
    assert ramp(0.5)[1] is None


def test_warmup_is_linear_then_one_and_budget_free():
    from runners.schedules import warmup

    fn = warmup(2.0)
    assert [fn(e)[0] for e in (0, 0.5, 1, 2, 50)] == pytest.approx([0, 0.25, 0.5, 1, 1])
    assert fn(1)[1] is None
    a, b = build_schedule({"kind": "warmup", "warmup_epochs": 2.0}, 5), build_schedule(
        {"kind": "warmup", "warmup_epochs": 2.0}, 90)
    assert a.budget_free and [a(e) for e in (0.3, 1.7, 4)] == [b(e) for e in (0.3, 1.7, 4)]


def test_cosine_warmup_then_half_cosine_to_final():
    from runners.schedules import cosine

    fn = cosine(warmup_pct=0.1, final=0.1)
    assert fn(0.0)[0] == pytest.approx(0) and fn(0.05)[0] == pytest.approx(0.5)
    assert fn(0.1)[0] == pytest.approx(1.0)
    assert fn(0.55)[0] == pytest.approx(0.55)  # half way down: (1 + final) / 2
    assert fn(1.0)[0] == pytest.approx(0.1)
    assert not build_schedule({"kind": "cosine", "warmup_pct": 0.0, "final": 0.0}, 10).budget_free


def test_wsd_cooldown_starts_on_a_whole_epoch():
    from runners.schedules import cooldown_start

    assert [cooldown_start(b, 0.2) for b in (1, 2, 4, 5, 8, 10, 30)] == [0, 1, 3, 4, 6, 8, 24]
    assert cooldown_start(10, 0.5) == 5 and cooldown_start(10, 1.0) == 0


@pytest.mark.parametrize("shape,mid", [("linear", 0.5), ("sqrt", 1 - math.sqrt(0.5))])
def test_wsd_values_warmup_stable_cooldown(shape, mid):
    from runners.schedules import wsd

    fn = wsd(total_epochs=10, warmup_epochs=1.0, cooldown_frac=0.2, final=0.0, cooldown_shape=shape)
    assert [fn(e)[0] for e in (0, 0.5, 1, 5, 8)] == pytest.approx([0, 0.5, 1, 1, 1])  # s(10) = 8
    assert fn(9)[0] == pytest.approx(mid) and fn(10)[0] == pytest.approx(0.0)
    lrs = [fn(8 + i / 50)[0] for i in range(101)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))  # the cooldown only falls
    assert wsd(10, cooldown_frac=0.2, final=0.1)(10)[0] == pytest.approx(0.1)
    assert wsd(10, stable_only=True)(9.9)[0] == 1.0  # the trunk: no cooldown


def test_wsd_budgets_agree_bit_for_bit_before_the_earlier_cooldown():
    from runners.schedules import cooldown_start

    cfg = {"kind": "wsd", "warmup_epochs": 1.5, "cooldown_frac": 0.2, "final": 0.0,
           "cooldown_shape": "linear", "stable_only": False}
    for b1, b2 in ((7, 30), (3, 4), (12, 13)):
        s1, s2 = build_schedule(cfg, b1), build_schedule(cfg, b2)
        start = min(cooldown_start(b1, 0.2), cooldown_start(b2, 0.2))
        points = [e + i / 37 for e in range(start) for i in range(37)]
        assert [s1(p) for p in points] == [s2(p) for p in points]  # exact: a branch relies on it
        assert s1(b1) != s2(b1)  # and they do differ after
