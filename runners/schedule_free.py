"""Schedule-Free AdamW (Defazio et al. 2024, arXiv:2405.15682) as the engine runs it.

The `schedulefree` package keeps two points per parameter: the model holds y (where gradients are taken)
in train mode and x (the weighted average of the z iterates, the point to evaluate) in eval mode;
`optimizer.eval()` / `.train()` move the model between them (schedulefree/adamw_schedulefree.py). Its
`step` refuses to run in eval mode, so this subclass enters train mode at construction, and
`evaluation_weights` — the engine's hook around evaluation (runners/engine.py `evaluate`) — switches to x
for the block. On leaving it restores y exactly from a copy rather than by `.train()`'s lerp back, whose
rounding would make every evaluation nudge the training point.

Checkpoints are written in train mode: the model's state holds y, the optimizer's holds z, the second
moments and each group's k, weight_sum, lr_max and train_mode=True, so a resumed run rebuilds this class
(train mode, no state yet), loads both, and continues bit for bit. x is not stored: it is
x = y + (1 - 1/beta1)(z - y), what `.eval()` computes on a loaded pair. (Saving x instead would need that
lerp inverted on resume, which rounds.) Weight decay is the package's (wd_mode native): at y, added to
the Adam-normalised gradient, i.e. decoupled (adamw_schedulefree.py `step`).
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import schedulefree
import torch


class AdamWScheduleFree(schedulefree.AdamWScheduleFree):
    # BatchNorm statistics gathered at y do not describe x: the engine recomputes them over this many
    # training batches inside `evaluation_weights` (the package README's recipe, "Caveats": 50 batches).
    batchnorm_refresh_batches = 50

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.train()

    # The package's arguments, for runners/optimizers.py: kwargs checked by name, weight_decay found.
    __init__.__signature__ = inspect.signature(schedulefree.AdamWScheduleFree.__init__)

    @contextmanager
    def evaluation_weights(self):
        """Within the block the model holds x (optimizer in eval mode); after it, y exactly as before."""
        params = [p for group in self.param_groups for p in group["params"]]
        saved = [p.detach().clone() for p in params]
        self.eval()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, y in zip(params, saved):
                    p.copy_(y)
            for group in self.param_groups:
                group["train_mode"] = True
