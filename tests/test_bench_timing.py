"""bench.timing's clocks measure what they say: the engine figure's clock counts work and blocking
(the engine's disk syncs) but not time spent queued behind other jobs. Bounds are generous: these
run beside other tests on a loaded 2-core machine."""
import os
import subprocess
import sys
import time

import pytest

from bench.timing import SCHEDSTAT, compare, table_rows, unqueued_time

linux_schedstat = pytest.mark.skipif(not os.path.exists(SCHEDSTAT), reason="needs Linux schedstat")


def spin(seconds: float) -> None:
    """Work for `seconds` of this thread's CPU time, however long that takes on the wall."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def work_then_block() -> None:
    spin(0.04)
    time.sleep(0.04)


@linux_schedstat
def test_unqueued_clock_counts_blocking_like_the_wall_clock():
    out = compare(work_then_block, lambda: spin(0.04), repeats=3, clock=unqueued_time)
    assert 1.5 < out["ratio"] < 2.6  # 0.08 s against 0.04 s
    assert out["clock"] == "unqueued_time" and out["pairs"] == 3


def test_cpu_clock_is_blind_to_blocking():
    # Why the engine figure is not timed by process CPU time: its fsyncs would not count.
    out = compare(work_then_block, lambda: spin(0.04), repeats=3, clock=time.process_time)
    assert 0.7 < out["ratio"] < 1.4 and out["clock"] == "process_time"


@linux_schedstat
def test_unqueued_clock_leaves_out_waiting_behind_another_job():
    core = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    rival = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                             stdout=subprocess.PIPE)
    try:
        os.sched_setaffinity(rival.pid, {core})
        os.sched_setaffinity(0, {core})  # this thread and the rival now take turns on one core
        rival.stdout.readline()
        wall, start = time.perf_counter(), unqueued_time()
        spin(0.2)
        took, wall = unqueued_time() - start, time.perf_counter() - wall
    finally:
        os.sched_setaffinity(0, before)
        rival.kill()
        rival.wait()
    assert 0.15 < took < 0.3 < wall  # wall time counts the rival's turns too (~0.4 s)


def test_table_says_how_a_figure_was_timed():
    rows = list(table_rows({"engine": {"ratio": 1.01, "ratio_min": 0.9, "ratio_max": 1.1,
                                       "timing": "20 pairs, unqueued_time, 1 torch thread"}}))
    assert rows == [("engine", "1.010 [0.900-1.100] (20 pairs, unqueued_time, 1 torch thread)", "")]
