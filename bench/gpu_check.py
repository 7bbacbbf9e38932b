"""`make gpu-check`: full-size models on synthetic data on one CUDA device, in a few minutes — images/s,
tokens/s, epoch-time estimates and achieved TFLOP/s against the device's bf16 peak. Needs only torch and
this project: no dataset, no network."""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from results.records import write_text_atomic

from .timing import machine
from .vision import gpu_check_vision

OUT = Path("results/bench/gpu_check.json")
WT2_TRAIN_TOKENS = 2_088_628  # WikiText-2 v1 training tokens (claims.md)
WT2_VOCAB = 33_278
# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, no sparsity).
BF16_PEAK = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
             "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0}


def device_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def lm_flops_per_token(emb: int, hidden: int, layers: int, vocab: int, gates: int, window_first: int) -> float:
    """Training FLOPs per token (forward x3 for forward + backward) of the matmuls: each recurrent
    layer's gate projections (LSTM: input and hidden weights, 4 gates; QRNN: convolution window x
    input, 3 gates) and the decoder. Elementwise work is left out."""
    sizes = [emb] + [hidden] * (layers - 1) + [emb]
    total = 0.0
    for i in range(layers):
        n_in, n_out = sizes[i], sizes[i + 1]
        if gates == 4:  # LSTM
            total += 2 * 4 * n_out * (n_in + n_out)
        else:  # QRNN
            total += 2 * 3 * n_out * n_in * (window_first if i == 0 else 1)
    return 3 * (total + 2 * emb * vocab)


def lm_throughput(model, batch: int, bptt: int, seconds: float, vocab: int = WT2_VOCAB,
                  device: str = "cuda") -> float:
    """Tokens/s of full training steps (bf16 autocast, Adam), after warm-up, for about `seconds`."""
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, vocab, (bptt + 1, batch), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        # bf16 on CUDA; oneDNN has no bf16 LSTM kernel for some shapes, so a CPU dry run stays fp32.
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model(tokens[:-1])
            loss = F.cross_entropy(out.logits.float().flatten(0, 1), tokens[1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    sync()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
        if steps % 10 == 0:
            sync()
    sync()
    return steps * batch * bptt / (time.perf_counter() - start)


def gpu_check_text(seconds_each: float) -> dict:
    from suites.text.awd_lstm import Dropouts, awd_lstm
    from suites.text.qrnn import qrnn_lm

    torch.backends.cudnn.benchmark = True
    peak = device_peak(torch.cuda.get_device_name())
    models = {  # the blog's sizes and dropouts (claims.md), batch 100, BPTT 70
        "awd_lstm_wt2": (awd_lstm(WT2_VOCAB, 400, 1150, 3, Dropouts(0.6, 0.4, 0.5, 0.1, 0.2)),
                         lm_flops_per_token(400, 1150, 3, WT2_VOCAB, gates=4, window_first=1)),
        "qrnn_wt2": (qrnn_lm(WT2_VOCAB, 400, 1550, 4, Dropouts(0.4, 0.4, 0.1, 0.1, 0.2)),
                     lm_flops_per_token(400, 1550, 4, WT2_VOCAB, gates=3, window_first=2)),
    }
    out = {}
    for name, (model, flops_per_token) in models.items():
        tokens_s = lm_throughput(model, batch=100, bptt=70, seconds=seconds_each)
        tflops = tokens_s * flops_per_token / 1e12
        out[name] = {"tokens_s": round(tokens_s), "epoch_s": round(WT2_TRAIN_TOKENS / tokens_s, 2),
                     "tflop_s": round(tflops, 1),
                     "pct_of_bf16_peak": round(100 * tflops / peak, 1) if peak else None}
    return out


def main() -> None:
    if not torch.cuda.is_available():
        print("error: make gpu-check needs a CUDA device; none is visible to torch "
              f"({torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        sys.exit(2)
    started = time.perf_counter()
    name = torch.cuda.get_device_name()
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "bf16_peak_tflop_s": device_peak(name),
              "vision": gpu_check_vision(seconds_budget=150.0), "text": gpu_check_text(seconds_each=45.0)}
    peak = report["bf16_peak_tflop_s"]
    for row in report["vision"].values():
        if isinstance(row, dict) and peak:
            row["pct_of_bf16_peak"] = round(100 * row["tflop_s"] / peak, 1)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    write_text_atomic(OUT, json.dumps(report, indent=2) + "\n")
    print(f"{name}: bf16 peak {peak} TFLOP/s")
    for section in ("vision", "text"):
        for task, row in report[section].items():
            if isinstance(row, dict):
                print(f"  {task:<15} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"wrote {OUT} in {report['wall_s']} s")
