"""The engine reads a run's optional members once, through the declared protocols (runners/capabilities.py):
each optimizer and task that implements one is seen to, and nothing is assumed of those that do not."""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from runners.capabilities import Capabilities
from runners.ntasgd import NTASGD
from runners.schedule_free import AdamWScheduleFree


class PlainTask:
    def evaluate(self, model):
        return {}


class FinalTask(PlainTask):
    final_metrics = ("val_ppl_blog",)

    def evaluate_final(self, model):
        return {"val_ppl_blog": 1.0}


def params():
    return [nn.Parameter(torch.zeros(2))]


def test_a_plain_task_and_optimizer_have_none():
    can = Capabilities.of(PlainTask(), torch.optim.AdamW(params()))
    assert can == Capabilities() and can.evaluation_weights is nullcontext


def test_ntasgd_evaluates_at_its_average_and_hears_every_epoch():
    opt = NTASGD(params())
    can = Capabilities.of(PlainTask(), opt)
    assert can.evaluation_weights == opt.evaluation_weights and can.epoch_end == (opt.on_epoch_end,)
    assert can.refresh_batches == 0 and can.evaluate_final is None


def test_schedule_free_refreshes_batchnorm_and_a_task_brings_its_final_metrics():
    opt = AdamWScheduleFree(params(), lr=1e-3)
    task = FinalTask()
    can = Capabilities.of(task, opt)
    assert can.refresh_batches == 50 and can.evaluation_weights == opt.evaluation_weights
    assert can.evaluate_final == task.evaluate_final and can.epoch_end == ()
