"""LR range test: on a toy problem with a known stable range it picks an LR inside it; on a real task it
runs once per (task, optimizer), is cached, and the run records the LR with its origin."""
import json

import torch
import torch.nn.functional as F
from torch import nn

from runners.config import LRFindConf, OptimizerConf, RunConf
from runners.run import make_task
from runners.spec import resolve_run
from runners.lr_find import cache_path, find_lr, lr_range_test
from suites.base import TaskConf
from conftest import compose_cfg

# Least squares with feature variances SCALES: the loss mean((x.w - y)^2) has Hessian 2 diag(SCALES),
# so plain gradient descent is stable iff lr < 2 / (2 max(SCALES)) = 0.25.
SCALES = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.1])
STABLE_MAX = 1 / SCALES.max().item()


class ToyRegression:
    metrics = ("mse",)

    def __init__(self, n: int = 2048, batch: int = 64):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, len(SCALES), generator=gen) * SCALES.sqrt()
        self.y = self.x @ torch.randn(len(SCALES), generator=gen) + 0.1 * torch.randn(n, generator=gen)
        self.batch = batch

    def build_model(self):
        return nn.Linear(len(SCALES), 1, bias=False)

    def train_batches(self, epoch, generator):
        order = torch.randperm(len(self.x), generator=generator)
        return [(self.x[order[i:i + self.batch]], self.y[order[i:i + self.batch]])
                for i in range(0, len(self.x), self.batch)]

    def loss(self, model, batch):
        x, y = batch
        return F.mse_loss(model(x).squeeze(1), y)

    def evaluate(self, model):
        return {"mse": F.mse_loss(model(self.x).squeeze(1), self.y).item()}


SETTINGS = {"steps": 200, "start_lr": 1e-5, "end_lr": 10.0, "smoothing": 0.98, "divergence": 4.0,
            "divisor": 10.0, "seed": 0}
PLAIN_SGD = OptimizerConf(_target_="torch.optim.SGD", name="sgd", weight_decay=0.0, kwargs={"momentum": 0.0})


def toy_run(**settings) -> RunConf:
    """What the test reads of a run: its optimizer, stages (none), precision, clipping and settings."""
    return RunConf(task=TaskConf(), optimizer=PLAIN_SGD, lr_find=LRFindConf(**{**SETTINGS, **settings}))


def test_toy_problem_lr_is_inside_the_stable_range():
    test = lr_range_test(ToyRegression(), toy_run(), torch.device("cpu"))
    assert STABLE_MAX / 300 < test.lr < STABLE_MAX
    assert test.lr == test.lr_at_min / 10
    # The ramp went past the stable edge and stopped there (the loss blew up), not at the end of the ramp.
    assert max(test.lrs) > STABLE_MAX and test.stopped_early
    assert len(test.lrs) == len(test.losses) == len(test.smoothed)


def test_a_diverging_ramp_never_picks_an_lr_past_the_blow_up():
    test = lr_range_test(ToyRegression(), toy_run(start_lr=1.0), torch.device("cpu"))
    assert test.lr <= 1.0 / 10


def compose_run(tmp_path, *overrides):
    return compose_cfg([f"results_dir={tmp_path}", "task=digits_resnet", "task.width=8", "task.blocks=1",
                        "~task.lr.adamw", *overrides])


def resolve_lr(cfg) -> tuple[float, str]:
    """The run's LR as runners/run.py prepare takes it: its config's, else the range test's."""
    spec = resolve_run(cfg)
    return spec.lr or find_lr(spec, make_task(spec, torch.device("cpu")), torch.device("cpu"))


def test_no_recipe_lr_runs_the_test_once_and_caches_it(tmp_path, monkeypatch):
    cfg = compose_run(tmp_path, "optimizer=adamw", "lr_find.steps=12")
    lr, origin = resolve_lr(cfg)
    path = cache_path(resolve_run(cfg))
    assert path.exists() and origin == f"lr_find[{path.name}]"
    record = json.loads(path.read_text())
    assert record["lr"] == lr > 0 and record["optimizer"] == "adamw" and "rule" in record
    assert len(record["lrs"]) <= 12

    import runners.lr_find as lr_find

    monkeypatch.setattr(lr_find, "lr_range_test", lambda *a: (_ for _ in ()).throw(AssertionError))
    # Another schedule, same (task, optimizer): the cached test answers without training.
    assert resolve_lr(compose_run(tmp_path, "optimizer=adamw", "lr_find.steps=12",
                                  "schedule=reference")) == (lr, origin)
    # A table entry wins over the test.
    assert resolve_lr(compose_run(tmp_path, "optimizer=sgd")) == (0.1, "task.lr[sgd]")
    # Different test settings are a different test (a new cache key).
    assert cache_path(resolve_run(compose_run(tmp_path, "optimizer=adamw", "lr_find.steps=13"))) != path
