"""The QRNN's parallel fo-pooling scan against the sequential definition, and the layer's state."""
import pytest
import torch

from suites.text.qrnn import QRNNLayer, forget_mult, forget_mult_loop, linear_scan_

LENGTHS = [1, 2, 3, 5, 8, 17, 70, 71]


def sequential(a, b, reverse=False):
    c, out = torch.zeros_like(b[0]), torch.empty_like(b)
    for t in (reversed(range(len(a))) if reverse else range(len(a))):
        c = a[t] * c + b[t]
        out[t] = c
    return out


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", LENGTHS)
def test_linear_scan_matches_the_recurrence(length, reverse):
    torch.manual_seed(length)
    a, b = torch.rand(length, 2, 3, dtype=torch.float64), torch.randn(length, 2, 3, dtype=torch.float64)
    a_before = a.clone()
    assert torch.allclose(linear_scan_(a, b.clone(), reverse), sequential(a, b, reverse), atol=1e-12)
    assert torch.equal(a, a_before)  # the caller's coefficients are left alone


@pytest.mark.parametrize("length", LENGTHS)
def test_scan_equals_loop_in_outputs_and_gradients(length):
    torch.manual_seed(length)
    shape = (length, 4, 33)
    forget = torch.rand(shape).clamp(0.01, 0.99).requires_grad_()
    candidate = torch.randn(shape).tanh().requires_grad_()
    c0 = torch.randn(shape[1:], requires_grad=True)
    upstream = torch.randn(shape)
    results = []
    for pool in (forget_mult, forget_mult_loop):
        out = pool(forget, candidate, c0)
        grads = torch.autograd.grad((out * upstream).sum(), (forget, candidate, c0))
        results.append((out, *grads))
    for scan_value, loop_value in zip(*results):
        assert torch.allclose(scan_value, loop_value, atol=1e-5, rtol=1e-5)


def test_scan_gradcheck_in_double():
    torch.manual_seed(0)
    inputs = (torch.rand(9, 2, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(9, 2, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(2, 3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(forget_mult, inputs)


def test_scan_with_saturated_gates_stays_finite():
    forget = torch.tensor([0.0, 1.0, 1e-30, 1.0]).view(4, 1, 1)
    candidate = torch.tensor([1.0, -1.0, 0.5, 0.25]).view(4, 1, 1)
    out = forget_mult(forget, candidate)
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 1.0, 0.5, 0.5]))


@pytest.mark.parametrize("window", [1, 2])
def test_state_carried_between_windows_equals_one_long_window(window):
    """Hidden state and the previous input (window 2) carry over, as awd-lstm-lm's save_prev_x."""
    torch.manual_seed(0)
    layer = QRNNLayer(5, 7, window=window, weight_p=0.3).eval()
    x = torch.randn(11, 3, 5)
    whole, (c_whole, _) = layer(x)
    first, state = layer(x[:4])
    second, (c_split, _) = layer(x[4:], state)
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-6)
    assert torch.allclose(c_split, c_whole, atol=1e-6)


def test_window_two_sees_the_previous_step_only():
    torch.manual_seed(0)
    layer = QRNNLayer(2, 3, window=2).eval()
    x = torch.randn(6, 1, 2)
    changed = x.clone()
    changed[3] += 1.0
    out, changed_out = layer(x)[0], layer(changed)[0]
    assert torch.equal(out[:3], changed_out[:3])  # causal: earlier steps unaffected
    assert not torch.allclose(out[3:], changed_out[3:])


def test_weight_drop_on_gate_weights_only_in_training():
    torch.manual_seed(0)
    layer = QRNNLayer(4, 6, weight_p=0.5)
    x = torch.randn(5, 2, 4)
    assert not torch.allclose(layer.train()(x)[0], layer(x)[0])
    assert torch.equal(layer.eval()(x)[0], layer(x)[0])


def test_scan_operation_count_grows_with_log_length():
    """No Python loop over time: 64x the steps costs a few more tensor operations, not 64x."""
    def operations(length):
        forget = torch.rand(length, 2, 3, requires_grad=True)
        candidate = torch.randn(length, 2, 3, requires_grad=True)
        with torch.profiler.profile() as prof:
            forget_mult(forget, candidate).sum().backward()
        return len([e for e in prof.events() if e.name.startswith("aten::")])

    assert operations(1024) < 3 * operations(16)
