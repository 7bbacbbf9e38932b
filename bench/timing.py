"""Repeat-and-summarise helpers shared by the benchmark sections."""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Callable, Iterator

SCHEDSTAT = "/proc/thread-self/schedstat"  # Linux: ns on a core, ns queued for one, timeslices


def _summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def unqueued_time() -> float:
    """Wall-clock seconds less those this thread spent runnable but waiting for a core: its time on a
    core plus its time blocked (disk syncs, sleeps). Other jobs' CPU load only adds the waiting, so on a
    quiet machine this reads as wall time, and on a loaded one it leaves out what the load added. It
    counts the calling thread alone: time work on one (torch_threads(1))."""
    with open(SCHEDSTAT) as fh:
        queued_ns = int(fh.read().split()[1])
    return time.perf_counter() - queued_ns / 1e9


# For figures that must hold under load; where schedstat is missing, CPU time (blind to disk syncs).
STEADY_CLOCK = unqueued_time if os.path.exists(SCHEDSTAT) else time.process_time


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside the block, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compare(candidate: Callable[[], object], baseline: Callable[[], object], repeats: int = 5,
            warmup: int = 1, clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time both alternately, so a load spike hits both; the ratio is the median of per-pair ratios
    (candidate / baseline), with its min and max. `clock` reads seconds: wall time by default;
    `unqueued_time` leaves out waiting for a core behind other jobs."""
    for _ in range(warmup):
        candidate(), baseline()
    pairs = []
    for _ in range(repeats):
        start = clock()
        candidate()
        middle = clock()
        baseline()
        pairs.append((middle - start, clock() - middle))
    ratios = [a / b for a, b in pairs]
    return {"candidate": _summary([a for a, _ in pairs]), "baseline": _summary([b for _, b in pairs]),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "clock": clock.__name__, "pairs": repeats}


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
        if "timing" in value:  # how a figure not timed by the default wall clock was taken
            spread += f" ({value['timing']})"
        yield prefix, f"{figure:.3f}{spread}" if isinstance(figure, float) else str(figure), value.get("goal", "")
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from table_rows(sub, f"{prefix}.{key}" if prefix else key)


def print_table(results: dict) -> None:
    rows = list(table_rows(results))
    width = max((len(name) for name, _, _ in rows), default=10)
    for name, text, goal in rows:
        print(f"  {name:<{width}}  {text:>40}  goal {goal}")
