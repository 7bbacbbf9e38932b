"""NT-ASGD (Merity et al. 2017): plain SGD until validation stops improving, then averaged SGD.

awd-lstm-lm's rule, checked once per epoch after evaluation (the engine calls `on_epoch_end`): with
`history` the validation losses logged so far, switch when
    len(history) > nonmono  and  val_loss > min(history[:-nonmono]),
i.e. when this epoch is worse than the best of the epochs more than `nonmono` checks ago; then log
val_loss. After the switch the step is unchanged (ASGD with lambd = 0: p <- p - lr g) and every
parameter's running mean over all later steps is kept; evaluation swaps that mean in
(`evaluation_weights`), as awd-lstm-lm evaluates its averaged `ax`. Once averaging, no more checks.

Weight decay and clipping are the engine's (runners/optimizers.py), as for every optimizer. Everything
the rule needs lives in `state_dict()`, as tensors and plain numbers, so a resumed run switches exactly
when an uninterrupted one would, and checkpoints load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class NTASGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 30.0, nonmono: int = 5, monitor: str = "val_loss"):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if nonmono < 1:
            raise ValueError(f"nonmono must be >= 1, got {nonmono}")
        super().__init__(params, {"lr": lr})
        self.nonmono, self.monitor = nonmono, monitor
        self.history: list[float] = []  # validation losses logged before the switch
        self.switched_at: int | None = None  # epoch after which averaging began
        self.averaged_steps = 0

    @property
    def averaging(self) -> bool:
        return self.switched_at is not None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        stepped = []
        for group in self.param_groups:
            active = [p for p in group["params"] if p.grad is not None]
            if active:
                torch._foreach_add_(active, [p.grad for p in active], alpha=-group["lr"])
            stepped += active
        if self.averaging:
            self._update_averages(stepped)
        return loss

    def _update_averages(self, params: list[torch.Tensor]) -> None:
        self.averaged_steps += 1
        for p in params:
            state = self.state[p]
            if "average" not in state:  # a parameter's mean starts with its first averaged iterate
                state["average"], state["average_count"] = p.detach().clone(), 0
            state["average_count"] += 1
            state["average"].lerp_(p, 1.0 / state["average_count"])  # running mean

    def on_epoch_end(self, epoch: int, row: dict) -> None:
        if self.averaging:
            return
        if self.monitor not in row:
            raise KeyError(f"NT-ASGD monitors {self.monitor!r}, which this task does not report "
                           f"(it reports {sorted(row)})")
        value = float(row[self.monitor])
        if len(self.history) > self.nonmono and value > min(self.history[:-self.nonmono]):
            self.switched_at = epoch
        self.history.append(value)

    @contextmanager
    def evaluation_weights(self):
        """Within the block, every averaged parameter holds its running mean."""
        swapped = [(p, self.state[p]["average"]) for g in self.param_groups for p in g["params"]
                   if "average" in self.state.get(p, {})]
        saved = [p.detach().clone() for p, _ in swapped]
        with torch.no_grad():
            for p, average in swapped:
                p.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for (p, _), original in zip(swapped, saved):
                    p.copy_(original)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["ntasgd"] = {"history": list(self.history), "nonmono": self.nonmono,
                           "switched_at": -1 if self.switched_at is None else self.switched_at,
                           "averaged_steps": self.averaged_steps}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("ntasgd")
        super().load_state_dict(state_dict)
        self.history = [float(v) for v in extra["history"]]
        self.nonmono = int(extra["nonmono"])
        self.switched_at = None if extra["switched_at"] < 0 else int(extra["switched_at"])
        self.averaged_steps = int(extra["averaged_steps"])
