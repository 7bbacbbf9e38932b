"""A toy task with a known best LR, for the tuner's tests: loss 0.5 ||w - w*||^2, so plain SGD contracts
the error by |1 - lr| per step — it converges for 0 < lr < 2, fastest at lr = 1, and diverges beyond 2."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from omegaconf import OmegaConf
from torch import nn

from results.targets import Target
from suites.base import Task, TaskConf

DIM, STEPS = 16, 4


@dataclass
class ToyConf(TaskConf):
    _target_: str = "toy_task.ToyTask"
    name: str = "toy"
    epochs: int = 8
    target: Target = field(default_factory=lambda: Target("val_loss", 1e-6, "min"))
    step_sleep: float = 0.0  # seconds per step: a trial long enough to be killed mid-run


class ToyTask(Task):
    metrics = ("val_loss",)

    def __init__(self, cfg, device="cpu"):
        self.cfg = cfg
        self.optimum = torch.linspace(-1, 1, DIM)

    def build_model(self) -> nn.Module:
        return nn.Linear(DIM, 1, bias=False)  # its weight row is w (random start, seeded by the engine)

    def train_batches(self, epoch, generator):
        return [None] * STEPS

    def loss(self, model, batch):
        if self.cfg.step_sleep:
            time.sleep(self.cfg.step_sleep)
        return 0.5 * ((model.weight[0] - self.optimum) ** 2).sum()

    def evaluate(self, model):
        return {"val_loss": float(0.5 * ((model.weight[0] - self.optimum) ** 2).sum())}


def toy_cell(results_dir: str, trials: int = 8, **task):
    """A grid cell of the toy task: SGD without momentum, constant LR around the sourced 1.0."""
    from runners.config import ConstantConf, OptimizerConf
    from runners.grid.settings import GridConf

    cfg = OmegaConf.structured(GridConf)
    cfg.task = OmegaConf.structured(ToyConf(lr={"sgd": 1.0}, **task))
    cfg.optimizer = OmegaConf.structured(OptimizerConf(_target_="torch.optim.SGD", name="sgd", wd_mode="l2",
                                                       kwargs={"momentum": 0.0}))
    cfg.schedule = OmegaConf.structured(ConstantConf())
    cfg.merge_with({"results_dir": results_dir, "suite": "toy", "device": "cpu", "progress": False,
                    "threads": 1, "grid": {"tuning": {"trials": trials}}})
    return cfg


if __name__ == "__main__":  # python toy_task.py RESULTS_DIR TRIALS STEP_SLEEP: one tuning worker
    import sys

    from runners.grid.tuning import tune

    print(tune(toy_cell(sys.argv[1], int(sys.argv[2]), step_sleep=float(sys.argv[3])))["best_trial"])
