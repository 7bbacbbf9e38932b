"""Engine overhead: epochs of the suite's loop (schedule per batch, decay, records, checkpoints,
hooks) vs a bare hand-written PyTorch loop doing the same training and evaluation."""
from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from results.targets import Target
from runners.config import OptimizerConf, RunConf
from runners.engine import fit
from runners.run import RunFiles
from suites.digits import DigitsResNet, DigitsResNetConf

from .timing import STEADY_CLOCK, compare, torch_threads

EPOCHS = 3
# digits_resnet at its defaults (batch 64, width 32, 2 blocks) with AdamW; a target it never meets.
RUN = RunConf(task=DigitsResNetConf(name="digits_resnet", epochs=EPOCHS, target=Target("test_acc", 2.0)),
              optimizer=OptimizerConf(_target_="torch.optim.Adam", name="adamw", weight_decay=0.01,
                                      wd_mode="decoupled", kwargs={"betas": [0.9, 0.99]}),
              epochs=EPOCHS, progress=False)
# Pairs per --repeats: under load one pair's ratio strays ~8%, the median of 20 ~1% (sd over 12 runs).
PAIRS_PER_REPEAT = 4


def engine_run(task) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = RunFiles(Path(tmp))
        fit(task, RUN, 3e-3, {"kind": "one_cycle"}, files)


def bare_run(task) -> None:
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.99), weight_decay=0.01)
    for epoch in range(EPOCHS):
        model.train()
        for x, y in task.train_batches(epoch, torch.Generator().manual_seed(epoch)):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            task.evaluate(model)


def peak_memory_of_one_mini_run() -> float:
    """Peak resident memory (GiB) of a whole `python -m runners.train` digits run, in a child."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "runners.train", "progress=false", f"results_dir={tmp}"],
                       check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB


def run(repeats: int = 5) -> dict:
    """On one torch thread, timed by a clock that leaves out waiting for a core: two threads on a shared
    2-core machine stall whenever either is descheduled, and wall time counts other jobs' turns."""
    task = DigitsResNet(RUN.task, "cpu")
    with torch_threads(1):
        overhead = compare(lambda: engine_run(task), lambda: bare_run(task), PAIRS_PER_REPEAT * repeats,
                           clock=STEADY_CLOCK)
    timing = f"{overhead['pairs']} pairs, {overhead['clock']}, 1 torch thread"
    return {"engine_overhead": {**overhead, "goal": "<= 1.03", "timing": timing, "torch_threads": 1,
                                "work": f"digits_resnet, {EPOCHS} epochs + eval each, CPU"},
            "mini_run_peak_gib": {"value": peak_memory_of_one_mini_run(), "goal": "<= 2"}}
