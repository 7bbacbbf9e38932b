"""Repeat-and-summarise helpers shared by the benchmark sections."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable


def _summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def compare(candidate: Callable[[], object], baseline: Callable[[], object], repeats: int = 5,
            warmup: int = 1) -> dict:
    """Time both alternately, so a load spike hits both; the ratio is the median of per-pair ratios
    (candidate / baseline), with its min and max."""
    for _ in range(warmup):
        candidate(), baseline()
    pairs = []
    for _ in range(repeats):
        start = time.perf_counter()
        candidate()
        middle = time.perf_counter()
        baseline()
        pairs.append((middle - start, time.perf_counter() - middle))
    ratios = [a / b for a, b in pairs]
    return {"candidate": _summary([a for a, _ in pairs]), "baseline": _summary([b for _, b in pairs]),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def table_rows(value, prefix: str = ""):
    """(figure, text, goal) for every ratio or single value in a nested result dict."""
    if isinstance(value, dict) and ("ratio" in value or "value" in value):
        figure = value.get("ratio", value.get("value"))
        spread = f" [{value['ratio_min']:.3f}-{value['ratio_max']:.3f}]" if "ratio_min" in value else ""
        if "ratio_of_min" in value:
            spread += f" fastest/fastest {value['ratio_of_min']:.3f}"
        yield prefix, f"{figure:.3f}{spread}" if isinstance(figure, float) else str(figure), value.get("goal", "")
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from table_rows(sub, f"{prefix}.{key}" if prefix else key)


def print_table(results: dict) -> None:
    rows = list(table_rows(results))
    width = max((len(name) for name, _, _ in rows), default=10)
    for name, text, goal in rows:
        print(f"  {name:<{width}}  {text:>40}  goal {goal}")
