"""Recurrent-layer benchmark: the QRNN's reason to exist (speed against an LSTM of the same sizes),
its parallel fo-pooling scan against a Python time loop, and what DropConnect ("weight drop") costs
an LSTM training step. Every figure is a ratio of two alternately timed calls (bench/timing.py).

Sizes: seq 70, batch 20 (awd-lstm-lm's BPTT; a batch where the LSTM's step-by-step matmuls are
small). QRNN hidden 1550 (the reference's), once as a middle layer (1550 -> 1550, window 1) and once
as the first (400 -> 1550, window 2); AWD-LSTM's first layer (400 -> 1150, weight drop 0.5) with an
Adam step, as in training.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bench.timing import print_table
from suites.text import qrnn
from suites.text.regularizers import WeightDropLSTM

try:
    from .timing import compare as paired
except ImportError:  # run as a script: python bench/recurrent.py
    from timing import compare as paired  # type: ignore[no-redef]

SEQ, BATCH = 70, 20


def compare(candidate: Callable[[], None], baseline: Callable[[], None], repeats: int) -> dict:
    """bench.timing's paired comparison plus the ratio of the two fastest calls, which load spikes
    from other jobs inflate least."""
    timed = paired(candidate, baseline, repeats)
    return {**timed, "ratio_of_min": timed["candidate"]["min_s"] / timed["baseline"]["min_s"]}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(layer: nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer | None = None,
               forward: Callable | None = None) -> Callable[[], None]:
    """forward + backward (+ optimizer step) of one layer on x; `forward` overrides layer(x)."""
    run = forward or (lambda: layer(x)[0])

    def step() -> None:
        run().sum().backward()
        if optimizer is not None:
            optimizer.step()
        layer.zero_grad(set_to_none=True)
        sync(x.device)

    return step


def qrnn_versus_lstm(input_size: int, window: int, hidden: int, repeats: int, device) -> dict:
    x = torch.randn(SEQ, BATCH, input_size, device=device)
    layer = qrnn.QRNNLayer(input_size, hidden, window=window).to(device).train()
    lstm = nn.LSTM(input_size, hidden).to(device).train()
    scan = compare(train_step(layer, x), train_step(lstm, x), repeats)
    layer.pool = qrnn.forget_mult_loop  # the same layer pooling step by step: what the scan buys
    loop = compare(train_step(layer, x), train_step(lstm, x), repeats)
    return {"qrnn_over_lstm": {**scan, "goal": "<= 0.35"},
            "qrnn_with_loop_over_lstm": {**loop, "goal": "(for comparison)"}}


def scan_versus_loop(hidden: int, repeats: int, device) -> dict:
    """fo-pooling alone, forward + backward: the loop's time over the scan's (> 1: the scan wins)."""
    shape = (SEQ, BATCH, hidden)
    forget = torch.rand(shape, device=device, requires_grad=True)
    candidate = torch.randn(shape, device=device, requires_grad=True)
    upstream = torch.randn(shape, device=device)

    def pooling(pool) -> Callable[[], None]:
        def step() -> None:
            pool(forget, candidate).backward(upstream)
            forget.grad = candidate.grad = None
            sync(device)
        return step

    timed = compare(pooling(qrnn.forget_mult_loop), pooling(qrnn.forget_mult), repeats)
    return {**timed, "goal": ">= 1.3 (loop time / scan time)"}


def naive_weight_drop(layer: WeightDropLSTM, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """F.dropout on the hidden-to-hidden matrix: correct, but its CPU mask is slow to draw."""
    def forward() -> torch.Tensor:
        dropped = F.dropout(layer.lstm.weight_hh_l0, layer.weight_drop.p, training=True)
        return functional_call(layer.lstm, {"weight_hh_l0": dropped}, (x,))[0]
    return forward


def weight_drop_versus_lstm(repeats: int, device, input_size: int = 400, hidden: int = 1150) -> dict:
    x = torch.randn(SEQ, BATCH, input_size, device=device)
    dropped = WeightDropLSTM(input_size, hidden, weight_p=0.5).to(device).train()
    plain = nn.LSTM(input_size, hidden).to(device).train()
    ours = compare(train_step(dropped, x, torch.optim.Adam(dropped.parameters())),
                   train_step(plain, x, torch.optim.Adam(plain.parameters())), repeats)
    naive = compare(train_step(dropped, x, torch.optim.Adam(dropped.parameters()),
                               forward=naive_weight_drop(dropped, x)),
                    train_step(plain, x, torch.optim.Adam(plain.parameters())), repeats)
    goal = "<= 1.05" if device.type == "cuda" else "<= 1.15"
    return {"weight_drop_lstm_over_lstm": {**ours, "goal": goal},
            "naive_dropout_weight_drop_over_lstm": {**naive, "goal": "(for comparison)"}}


def measure_all(repeats: int, device: torch.device) -> dict:
    return {"qrnn_layer_1550": qrnn_versus_lstm(1550, 1, 1550, repeats, device),
            "qrnn_first_layer_400_1550": qrnn_versus_lstm(400, 2, 1550, repeats, device),
            "scan_speedup_over_loop": scan_versus_loop(1550, repeats, device),
            **weight_drop_versus_lstm(repeats, device)}


def run(repeats: int = 5) -> dict:
    """The section's figures on CUDA when available, else on the CPU: with torch's thread setting and
    with one thread. On a CPU shared with other jobs, one thread is the steadier figure: two-thread
    kernels stall whenever the OS deschedules either thread, and the scan (a few dozen large
    operations) suffers that more than the loop (hundreds of small ones run single-threaded)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    results = {"device": {"value": device.type, "goal": ""},
               f"threads_{threads}": measure_all(repeats, device)}
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
        try:
            results["threads_1"] = measure_all(repeats, device)
        finally:
            torch.set_num_threads(threads)
    return results


if __name__ == "__main__":
    import sys

    figures = run(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print_table(figures)
