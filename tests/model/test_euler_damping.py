"""``damping="euler"``: γ follows the coupling so that the explicit-Euler step of the linear part is
non-expansive. Checked against numpy's eigenvalues and SVD, an independent per-layer recurrence, and
TorchScript."""

import io
import math

import numpy as np
import pytest
import torch

from model import AFRNN, AFRNNConfig
from model.afrnn import euler_damping

torch.set_num_threads(1)
# The γ = 0 builds below recover A itself; the γ = 0 warning is expected there.
pytestmark = pytest.mark.filterwarnings("ignore:gamma = 0:UserWarning")


@pytest.mark.parametrize("epsilon, sigma", [(0.01, 3.0), (0.1, 2.0), (0.1, 9.9), (0.5, 1.5), (1.0, 0.3)])
def test_euler_damping_is_the_least_non_expansive_gamma(epsilon, sigma):
    gamma = float(euler_damping(epsilon, torch.tensor(sigma, dtype=torch.float64)))
    omegas = np.linspace(0.0, sigma, 2001)
    radius = np.abs(1 + epsilon * (-gamma + 1j * omegas))
    assert radius.max() == pytest.approx(1.0, abs=1e-9)            # touches 1 at ω = σ ...
    smaller = np.abs(1 + epsilon * (-0.99 * gamma + 1j * omegas))
    assert smaller.max() > 1.0                                      # ... and any less damping expands
    if epsilon * sigma <= 0.5:
        assert gamma == pytest.approx(epsilon * sigma ** 2 / 2, rel=0.1)  # the small-εσ approximation


def test_euler_damping_beyond_the_limit_minimises_the_radius():
    epsilon, sigma = 0.1, 30.0                                      # εσ = 3 > 1: no γ suffices
    gamma = float(euler_damping(epsilon, torch.tensor(sigma)))
    assert epsilon * gamma == pytest.approx(1.0)
    assert abs(1 + epsilon * (-gamma + 1j * sigma)) == pytest.approx(epsilon * sigma, rel=1e-6)


def build(layer_sizes, feedback="antisymmetric", damping="euler", epsilon=0.1, gamma=0.001, init_std=4.0):
    torch.manual_seed(0)
    return AFRNN(AFRNNConfig(input_size=2, layer_sizes=layer_sizes, output_size=3, feedback=feedback,
                             epsilon=epsilon, gamma=gamma, init_std=init_std, damping=damping)).double()


@pytest.mark.parametrize("layer_sizes, feedback", [((7,), "antisymmetric"), ((5, 9), "antisymmetric"),
                                                    ((5, 9), "none"), ((4, 6, 3), "antisymmetric")])
def test_coupling_matrix_uses_the_euler_damping_of_the_weights(layer_sizes, feedback):
    model = build(layer_sizes, feedback)
    B = model.coupling_matrix().detach().numpy()
    plain = build(layer_sizes, feedback, damping="fixed", gamma=0.0).coupling_matrix().detach().numpy()
    sigma = np.linalg.svd(plain, compute_uv=False).max()                 # ‖A‖₂ from numpy
    eps = model.epsilon
    expected_gamma = max(0.001, (1 - math.sqrt(max(0.0, 1 - (eps * sigma) ** 2))) / eps)
    np.testing.assert_allclose(B, plain - expected_gamma * np.eye(B.shape[0]), atol=1e-12)
    assert model.effective_gamma() == pytest.approx(expected_gamma, abs=1e-12)
    if eps * sigma <= 1:
        step_radius = np.abs(np.linalg.eigvals(np.eye(B.shape[0]) + eps * B)).max()
        assert step_radius <= 1 + 1e-9
        fixed = build(layer_sizes, feedback, damping="fixed")
        fixed_radius = np.abs(np.linalg.eigvals(np.eye(B.shape[0]) + eps * fixed.coupling_matrix()
                                                .detach().numpy())).max()
        assert fixed_radius > 1 + 1e-6                                  # the γ = 0.001 step expands


def test_forward_matches_an_independent_recurrence_with_the_effective_gamma():
    model = build((5, 9))
    x = torch.randn(3, 11, 2, dtype=torch.float64)
    A = model.coupling_matrix().detach() + 0.0
    gamma = float(euler_damping(model.epsilon, torch.linalg.matrix_norm(
        build((5, 9), damping="fixed", gamma=0.0).coupling_matrix().detach(), ord=2)))
    A = A + gamma * torch.eye(A.shape[0], dtype=A.dtype)                  # recover A
    U = torch.zeros(14, 2, dtype=torch.float64)
    U[:5] = model.weight_in.detach()
    b = torch.cat([layer.bias.detach() for layer in model.layers])
    z = torch.zeros(3, 14, dtype=torch.float64)
    for t in range(11):
        B = A - gamma * torch.eye(14, dtype=A.dtype)
        z = z + model.epsilon * torch.tanh(z @ B.t() + x[:, t] @ U.t() + b)
    expected = z[:, 5:] @ model.head.weight.detach().t() + model.head.bias.detach()
    torch.testing.assert_close(model(x), expected, atol=1e-10, rtol=0)


def test_gradients_flow_and_torchscript_agrees():
    model = build((5, 9)).float()
    x = torch.randn(2, 13, 2)
    model(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    scripted = torch.jit.load(buffer)
    torch.testing.assert_close(scripted(x), model(x), atol=1e-6, rtol=0)


def test_default_damping_is_the_configured_gamma():
    model = build((5, 9), damping="fixed", gamma=0.25)
    A = build((5, 9), damping="fixed", gamma=0.0).coupling_matrix()
    torch.testing.assert_close(model.coupling_matrix(), A - 0.25 * torch.eye(14, dtype=A.dtype))


def test_euler_damping_refuses_the_frnn():
    with pytest.raises(ValueError, match="damping='euler' assumes .* got feedback='free'"):
        AFRNNConfig(layer_sizes=(4, 4), feedback="free", damping="euler")
    with pytest.raises(ValueError, match="damping must be one of"):
        AFRNNConfig(damping="implicit")


def test_stability_report_sees_the_effective_gamma():
    from model.stability import stability_report
    model = build((5, 9)).float()
    report = stability_report(model, sequence_length=20, input_size=2, sections=["theorem"])
    assert report.model.gamma == pytest.approx(model.effective_gamma(), rel=1e-6)
    assert report.model.gamma > 0.001                        # the Euler damping exceeds the configured γ
