"""The benchmark harness computes what it says (speed itself is measured by `make bench`, not here)."""
import pytest

from bench.gpu_check import device_peak, lm_flops_per_token, lm_throughput
from bench.timing import compare
from suites.text.awd_lstm import Dropouts, awd_lstm
from suites.text.qrnn import qrnn_lm


def test_compare_reports_ratio_of_paired_times():
    calls = []
    out = compare(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # warm-up then alternating pairs
    assert out["candidate"]["repeats"] == 3 and out["ratio_min"] <= out["ratio"] <= out["ratio_max"]


def test_lm_flop_count_matches_hand_count():
    # One LSTM layer 4 -> 4 plus a decoder 4 -> 10: 3 x (2*4*4*(4+4) + 2*4*10) per token.
    assert lm_flops_per_token(4, 4, 1, 10, gates=4, window_first=1) == 3 * (256 + 80)
    # One QRNN layer, window 2: 3 gates x 2 x in x out x window.
    assert lm_flops_per_token(4, 4, 1, 10, gates=3, window_first=2) == 3 * (2 * 3 * 4 * 4 * 2 + 80)


def test_device_peaks_by_name():
    assert device_peak("NVIDIA H200") == 989.0 and device_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert device_peak("Some Future GPU") is None


@pytest.mark.parametrize("build", [awd_lstm, qrnn_lm])
def test_lm_throughput_runs_real_training_steps_on_cpu(build):
    model = build(50, 8, 12, 2, Dropouts(0.1, 0.1, 0.1, 0.1, 0.1))
    before = [p.detach().clone() for p in model.parameters()]
    tokens_s = lm_throughput(model, batch=4, bptt=6, seconds=0.05, vocab=50, device="cpu")
    assert tokens_s > 0
    assert any((p.detach() != b).any() for p, b in zip(model.parameters(), before))


def test_table_rows_flatten_nested_figures():
    from bench.timing import table_rows

    rows = list(table_rows({"engine": {"overhead": {"ratio": 0.98, "ratio_min": 0.9, "ratio_max": 1.1,
                                                    "goal": "<= 1.03"},
                                       "peak": {"value": 0.96, "goal": "<= 2"}}}))
    assert rows == [("engine.overhead", "0.980 [0.900-1.100]", "<= 1.03"), ("engine.peak", "0.960", "<= 2")]
