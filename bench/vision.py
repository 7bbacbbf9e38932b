"""Vision benchmark: can the data path feed the model? Loader images/s alone against the model's
consumption (train-step images/s) on the same device, for the CIFAR resident path and the Cars
decode/augment path; plus bf16 / channels_last on and off at toy size on the CPU.

`run(repeats)` is the CPU-sized section of `make bench`; `gpu_check_vision(seconds_budget)` is the
full-size synthetic-data check for a CUDA machine (no dataset, no network).
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from suites.vision.cars import decode_resized
from suites.vision.resident import CropFlip, ResidentImages
from suites.vision.resnet_head import torchvision_body_head
from suites.vision.side_on import CachedImages, SideOn, ViewBatches, draw_side_on
from suites.vision.wrn import WideResNet

CIFAR_TRAIN, CARS_TRAIN = 50_000, 8_144


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1,
                   budget_s: float | None = None) -> float:
    """Median wall time of fn() (device-synchronised), stopping early once `budget_s` is spent."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, started = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - started > budget_s:
            break
    return statistics.median(times)


def train_step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def prepare(model: torch.nn.Module, x: torch.Tensor, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(x.device, memory_format=fmt).train(), x.contiguous(memory_format=fmt)


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> int:
    """FLOPs of one forward + backward (FlopCounterMode counts matmuls and convolutions)."""
    counter = FlopCounterMode(display=False)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with counter, autocast:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def cifar_loader_vs_model(device: torch.device, batch: int, images: int, widen: int, blocks: int,
                          repeats: int, precision: str = "fp32", channels_last: bool = False,
                          budget_s: float | None = None) -> dict:
    data = ResidentImages(torch.randint(0, 256, (images, 32, 32, 3), dtype=torch.uint8), torch.randint(0, 10, (images,)),
                          [0.5] * 3, [0.25] * 3, device)
    generator = torch.Generator().manual_seed(0)
    epoch = lambda: [x for x, _ in data.train_epoch(batch, CropFlip(), generator)]  # noqa: E731
    loader_s = median_seconds(epoch, device, repeats, budget_s=budget_s)
    x, y = next(iter(data.train_epoch(batch, CropFlip(), generator)))
    model, x = prepare(WideResNet(3, blocks, widen), x, channels_last)
    step_s = median_seconds(train_step_fn(model, x, y, precision), device, repeats, warmup=2, budget_s=budget_s)
    return {"loader_img_s": images / loader_s, "model_img_s": batch / step_s,
            "flops_per_step": step_flops(model, x, y, precision), "step_s": step_s}


def synthetic_jpegs(n: int, height: int, width: int) -> list[bytes]:
    torch.manual_seed(0)
    return [torchvision.io.encode_jpeg(torch.randint(0, 256, (3, height, width), dtype=torch.uint8),
                                       quality=90).numpy().tobytes() for _ in range(n)]


def cars_loader_vs_model(device: torch.device, batch: int, size: int, cache_hw: tuple[int, int], arch: str,
                         repeats: int, jpeg_hw: tuple[int, int], precision: str = "fp32",
                         channels_last: bool = False, budget_s: float | None = None) -> dict:
    """Decode+resize (the one-time cache build) and the per-batch side-on render, each alone, against
    a train step of `arch` at `size`."""
    jpegs = synthetic_jpegs(batch, *jpeg_hw)
    decode_s = median_seconds(lambda: decode_resized(jpegs, cache_hw, device), device, repeats, budget_s=budget_s)
    cached, aspect = decode_resized(jpegs, cache_hw, device)
    data = CachedImages(cached.numpy(), torch.randint(0, 196, (batch,)).numpy(), aspect.numpy(), device)
    generator = torch.Generator().manual_seed(0)
    view = lambda: ViewBatches(data, torch.arange(batch), draw_side_on(batch, SideOn(size), generator), batch, size)  # noqa: E731
    render_s = median_seconds(lambda: next(iter(view())), device, repeats, budget_s=budget_s)
    x, y = next(iter(view()))
    model, x = prepare(torchvision_body_head(arch, 196, pretrained=False, weights="IMAGENET1K_V1"), x, channels_last)
    step_s = median_seconds(train_step_fn(model, x, y, precision), device, repeats, warmup=2, budget_s=budget_s)
    return {"decode_img_s": batch / decode_s, "augment_img_s": batch / render_s, "model_img_s": batch / step_s,
            "flops_per_step": step_flops(model, x, y, precision), "step_s": step_s}


def precision_layout_cpu(repeats: int) -> dict:
    """Toy WRN train step on the CPU, bf16 autocast and channels_last each on and off."""
    out = {}
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
            model, x = prepare(WideResNet(3, 1, 1), x, channels_last)
            seconds = median_seconds(train_step_fn(model, x, y, precision), x.device, repeats, warmup=2)
            out[f"{precision}{'+channels_last' if channels_last else ''}"] = {"img_s": 32 / seconds}
    return out


def run(repeats: int = 5) -> dict:
    """CPU, toy size: loader vs model for both paths, and the precision/layout grid. Prints a table."""
    cpu = torch.device("cpu")
    results = {
        "threads": torch.get_num_threads(),
        "cifar_resident (WRN 3x1 k1, batch 128)": cifar_loader_vs_model(cpu, 128, 2048, 1, 1, repeats),
        "cars_decode (resnet18, 64 px, batch 16)": cars_loader_vs_model(cpu, 16, 64, (72, 108), "resnet18",
                                                                        repeats, jpeg_hw=(240, 360)),
        "precision_layout (WRN 3x1 k1, batch 32)": precision_layout_cpu(repeats),
    }
    print(f"vision bench (CPU, {results['threads']} torch threads, torch {torch.__version__})")
    for name, row in results.items():
        if isinstance(row, dict):
            cells = ", ".join(f"{k} {v['img_s'] if isinstance(v, dict) else v:,.1f}" for k, v in row.items()
                              if k.endswith("img_s") or isinstance(v, dict))
            print(f"  {name:42s} {cells}")
    return results


def gpu_check_vision(seconds_budget: float = 120.0) -> dict:
    """Full-size synthetic train steps on CUDA, bf16 + channels_last: WRN-22 (batch 512, 32 px) and
    ResNet-50 (224 px, batch 128). Images/s, estimated epoch time, achieved TFLOP/s, and each loader's
    images/s alone for comparison. Needs no dataset and no network."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    device, share = torch.device("cuda"), seconds_budget / 2
    torch.backends.cudnn.benchmark = True
    cifar = cifar_loader_vs_model(device, 512, 50_000, 6, 3, repeats=50, precision="bf16", channels_last=True,
                                  budget_s=share / 3)
    cars = cars_loader_vs_model(device, 128, 224, (256, 384), "resnet50", repeats=30, jpeg_hw=(480, 720),
                                precision="bf16", channels_last=True, budget_s=share / 4)
    out = {"device": torch.cuda.get_device_name(device)}
    for name, row, train_images, batch in (("cifar10_wrn22", cifar, CIFAR_TRAIN, 512), ("cars_resnet50", cars, CARS_TRAIN, 128)):
        out[name] = {**{k: round(v, 1) for k, v in row.items() if k.endswith("img_s")},
                     "epoch_s": round(train_images / row["model_img_s"], 2),
                     "tflop_s": round(row["flops_per_step"] / row["step_s"] / 1e12, 1),
                     "gflop_per_step": round(row["flops_per_step"] / 1e9, 1)}
    return out


if __name__ == "__main__":
    import sys

    print(gpu_check_vision(float(sys.argv[2])) if sys.argv[1:2] == ["--gpu"] else run())
