"""Muon for hidden weight matrices, AdamW for everything else, in one optimizer (Jordan et al. 2024,
kellerjordan.github.io/posts/muon: "embedding, classifier head and scalar/vector parameters should be
optimized with AdamW").

build_optimizer (runners/optimizers.py) flags each group `muon` True or False from the task's io_params,
because this class declares `splits_io_params`. Per group kind:
  muon   B <- mu B + (1 - mu) g;  U <- Nesterov ? lerp(g, B, mu) : B;  O <- NS5(U as 2-D)
         p <- p (1 - lr wd) - adjust(lr, shape) O                       (torch/optim/_muon.py)
  adamw  Adam's step with decoupled decay p <- p (1 - lr wd)            (torch.optim.AdamW)
A conv filter (out, in, kh, kw) is orthogonalised as the (out, in*kh*kw) matrix, as Keller Jordan's Muon
flattens it (KellerJordan/Muon muon.py `update.view(len(update), -1)`); its LR adjustment uses that shape
too. torch.optim.Muon takes only 2-D parameters, so its helpers are reused here rather than the class.
`adjust_lr_fn="match_rms_adamw"` scales each update to 0.2 sqrt(max(A, B)), AdamW's typical update RMS
(Liu et al. 2025, arXiv:2502.16982, section 2.2), so one base LR and one WD serve both kinds.
Decay is the class's own (wd_mode native): each group's `weight_decay`, as both torch classes apply it.
Muon groups carry `momentum`, AdamW groups `betas`. A scheduled momentum (runners/optimizers.py
set_momentum) never reaches Muon's: build_optimizer leaves Muon groups unflagged, since no source cycles
it against the LR as 1cycle does (muon.yaml runs torch.optim.Muon's 0.95, a constant). With
optimizer.cycle_momentum=true (not muon.yaml's default) the AdamW groups' beta1 is cycled as adamw's is.
"""
from __future__ import annotations

import math

import torch
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, EPS, _adjust_lr, _zeropower_via_newtonschulz


class MuonAdamW(torch.optim.Optimizer):
    splits_io_params = True  # build_optimizer marks each group muon True/False (task.io_params)

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients=(DEFAULT_A, DEFAULT_B, DEFAULT_C), ns_steps: int = 5,
                 ns_eps: float = EPS, adjust_lr_fn: str = "match_rms_adamw", betas=(0.9, 0.99),
                 eps: float = 1e-8):
        if adjust_lr_fn not in ("original", "match_rms_adamw", "spectral_unclamped"):
            raise ValueError(f"adjust_lr_fn must be original, match_rms_adamw or spectral_unclamped, "
                             f"got {adjust_lr_fn!r}")
        muon = {"momentum": momentum, "nesterov": nesterov, "ns_coefficients": tuple(ns_coefficients),
                "ns_steps": ns_steps, "eps": ns_eps, "adjust_lr_fn": adjust_lr_fn}
        adamw = {"betas": tuple(betas), "eps": eps}
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]  # one AdamW group: muon groups must be flagged
        groups = [{**(muon if g.get("muon", False) else adamw), **g} for g in params]
        super().__init__(groups, {"lr": lr, "weight_decay": weight_decay, "muon": False})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    (self._muon if group["muon"] else self._adamw)(p, group, self.state[p])
        return loss

    @staticmethod
    def _muon(p: torch.Tensor, group: dict, state: dict) -> None:
        grad, mu = p.grad, group["momentum"]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad)
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - mu)
        update = grad.lerp(buf, mu) if group["nesterov"] else buf
        matrix = update.reshape(len(update), -1)
        ortho = _zeropower_via_newtonschulz(matrix, group["ns_coefficients"], group["ns_steps"], group["eps"])
        p.add_(ortho.reshape(p.shape), alpha=-_adjust_lr(group["lr"], group["adjust_lr_fn"], matrix.shape))

    @staticmethod
    def _adamw(p: torch.Tensor, group: dict, state: dict) -> None:
        grad, (beta1, beta2) = p.grad, group["betas"]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1, bias2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
        denom = (state["exp_avg_sq"].sqrt() / math.sqrt(bias2)).add_(group["eps"])
        p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / bias1)
