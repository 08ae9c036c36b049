"""``step_bound``: A is rescaled to ε‖A‖₂ ≤ β, so every Euler step of the linear part has radius
≤ √((1 − εγ)² + β²); exports fold the scale into R and W. Checked against numpy (independent norms,
eigenvalues and a float64 Euler loop) and the stability report (Theorem 3 still holds)."""

import numpy as np
import pytest
import torch

from model import AFRNN, AFRNNConfig
from model.inference import FastRecurrence
from model.stability import stability_report


def build(step_bound, layer_sizes=(12, 9), init_std=4.0, epsilon=0.1, gamma=0.01, feedback="antisymmetric",
          seed=0) -> AFRNN:
    torch.manual_seed(seed)
    model = AFRNN(AFRNNConfig(input_size=2, layer_sizes=layer_sizes, output_size=3, epsilon=epsilon,
                              gamma=gamma, init_std=init_std, feedback=feedback, step_bound=step_bound))
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.normal_(0, 0.5)
    return model.double().eval()


def raw_A(model: AFRNN) -> np.ndarray:
    return model.coupling_blocks().detach().numpy()


@pytest.mark.parametrize("layer_sizes", [(12, 9), (20,), (6, 5, 4)])
def test_the_step_uses_A_scaled_to_the_bound(layer_sizes):
    model = build(0.14, layer_sizes)
    A = raw_A(model)
    sigma = np.linalg.norm(A, 2)                                  # numpy's own 2-norm (SVD)
    assert model.epsilon * sigma > 0.14                           # large init: the bound is active
    B = model.coupling_matrix().detach().numpy()
    expected = A * (0.14 / (model.epsilon * sigma)) - model.gamma * np.eye(len(A))
    np.testing.assert_allclose(B, expected, rtol=1e-9, atol=1e-12)
    radius = np.abs(np.linalg.eigvals(np.eye(len(B)) + model.epsilon * B)).max()
    assert radius <= np.sqrt((1 - model.epsilon * model.gamma) ** 2 + 0.14 ** 2) + 1e-12
    assert radius <= 1.01


def test_within_the_bound_nothing_changes():
    loose = build(100.0)
    plain = build(None)
    torch.testing.assert_close(loose.coupling_matrix(), plain.coupling_matrix())


def test_forward_equals_a_float64_euler_loop_with_the_scaled_coupling():
    model = build(0.2)
    x = torch.randn(3, 30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = raw_A(model)
    B = A * (0.2 / (model.epsilon * np.linalg.norm(A, 2))) - model.gamma * np.eye(len(A))
    E = model.weight_in.detach().numpy()
    b = torch.cat([layer.bias for layer in model.layers]).detach().numpy()
    W, c = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    top = model.layer_bounds[-2]
    want = []
    for row in x.numpy():
        z = np.zeros(model.state_size)
        for x_t in row:
            u = b.copy()
            u[:E.shape[0]] += E @ x_t
            z = z + model.epsilon * np.tanh(B @ z + u)
        want.append(W @ z[top:] + c)
    with torch.no_grad():
        got = model(x).numpy()
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-9, atol=1e-10)


def test_the_scale_is_not_differentiated_but_A_still_learns():
    model = build(0.14)
    loss = model(torch.randn(2, 10, 2, dtype=torch.float64)).pow(2).sum()
    loss.backward()
    assert all(layer.weight_rec.grad is not None and layer.weight_rec.grad.abs().sum() > 0
               for layer in model.layers)


def test_folding_keeps_the_model_and_removes_the_runtime_bound():
    model = build(0.14)
    folded = model.fold_step_bound()
    assert folded.step_bound == 0.0 and folded.config.step_bound is None and model.step_bound == 0.14
    torch.testing.assert_close(folded.coupling_matrix(), model.coupling_matrix())
    x = torch.randn(2, 25, 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x))
    scripted = torch.jit.script(folded.float())
    fast, why = FastRecurrence.from_module(scripted)
    if fast is not None:                                           # needs a C compiler
        torch.testing.assert_close(fast(x.float()), scripted(x.float()), rtol=1e-4, atol=1e-5)
    torch.jit.script(build(0.14).float())                         # the unfolded model scripts too


def test_the_stability_report_sees_the_bound_and_theorem_3_still_holds():
    model = build(0.14, init_std=6.0).float()
    unbounded = build(None, init_std=6.0).float()
    report = stability_report(model, None, sequence_length=40, input_size=2, lyapunov_k=4)
    loose = stability_report(unbounded, None, sequence_length=40, input_size=2, lyapunov_k=4)
    assert report.summary.theorem_holds is True
    assert report.summary.max_step_spectral_radius <= 1.01 < loose.summary.max_step_spectral_radius


def test_a_bound_must_be_positive():
    with pytest.raises(ValueError, match="step_bound must be > 0"):
        AFRNNConfig(step_bound=0.0)
