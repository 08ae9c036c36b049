"""The stability numerics against independent oracles: autograd Jacobians of the exported step and of
the fused forward pass, NumPy eigen/singular values of dense matrices, and known linear systems."""

import warnings

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from model import AFRNN, AFRNNConfig, LSTMBaseline, LSTMConfig
from model.stability import stability_report
from model.stability.jacobians import (
    DenseJacobians,
    EulerJacobians,
    backward_products,
    step_jacobians,
)
from model.stability.lyapunov import lyapunov_exponents
from model.stability.spectrum import (
    continuous_eigenvalues,
    coupling_structure,
    max_real_bounds,
    sample_steps,
    spectrum_steps,
)

torch.set_num_threads(1)

FEEDBACK = {"arnn": "antisymmetric", "2-arnn": "none", "frnn": "free", "afrnn": "antisymmetric"}


def small_model(variant: str, **overrides) -> torch.nn.Module:
    """A small random model of ``variant``; ``afrnn-sequential`` / ``afrnn-3`` are AFRNN variations."""
    torch.manual_seed(0)
    if variant == "lstm":
        return LSTMBaseline(LSTMConfig(input_size=2, hidden_size=4, num_layers=2, output_size=3))
    settings = dict(input_size=2, output_size=3, epsilon=0.1, gamma=0.05, init_std=2.0)
    if variant == "arnn":
        settings.update(layer_sizes=(7,))
    elif variant == "afrnn-3":          # three layers, every pair coupled, unequal widths
        settings.update(layer_sizes=(5, 4, 3), couplings=((0, 1), (0, 2), (1, 2)))
    else:
        settings.update(layer_sizes=(6, 5))
    if variant == "afrnn-sequential":
        settings.update(update="sequential")
    settings["feedback"] = FEEDBACK.get(variant, "antisymmetric")
    settings.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # gamma = 0 warns by design
        return AFRNN(AFRNNConfig(**settings))


def trajectory(module, steps: int = 6, seed: int = 1):
    """(x (1, T, 2), h0 (1, D), states z_0 … z_T (T+1, D), drive (T, ·)) for a noise input."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, steps, 2, generator=generator)
    h0 = 0.5 * torch.randn(1, module.state_size, generator=generator)
    with torch.no_grad():
        _, states = module.forward_with_states(x, h0)
        drive = module.input_drive(x)
    return x, h0, states[0], drive[0]


def step_jacobian_oracle(module, z: torch.Tensor, drive_t: torch.Tensor) -> np.ndarray:
    """∂ step(z, u)/∂z of ONE step by torch.autograd.functional.jacobian."""
    return jacobian(lambda v: module.step(v.unsqueeze(0), drive_t.unsqueeze(0))[0], z).double().numpy()


def product_oracle(module, x: torch.Tensor, states: torch.Tensor, t: int) -> np.ndarray:
    """∂z_T/∂z_t through the model's own forward pass over x[t:] started from z_t."""
    def final_state(z):
        return module.forward_with_states(x[:, t:], z.unsqueeze(0))[1][0, -1]
    return jacobian(final_state, states[t]).double().numpy()


VARIANTS = ["arnn", "2-arnn", "frnn", "afrnn", "afrnn-3", "afrnn-sequential", "lstm"]


# -- step Jacobians ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_step_jacobians_equal_autograd_of_one_step(variant):
    module = small_model(variant)
    _, _, states, drive = trajectory(module)
    jacobians = step_jacobians(module, states, drive)
    simultaneous = variant not in ("lstm", "afrnn-sequential")
    assert isinstance(jacobians, EulerJacobians if simultaneous else DenseJacobians)
    assert (jacobians.steps, jacobians.size) == (6, module.state_size)
    block = torch.randn(module.state_size, 3, dtype=torch.float64)
    for t in range(jacobians.steps):
        expected = step_jacobian_oracle(module, states[t], drive[t])
        np.testing.assert_allclose(jacobians.matrix(t).numpy(), expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(jacobians.apply(t, block).numpy(), expected @ block.numpy(), atol=1e-5)
        np.testing.assert_allclose(jacobians.apply_left(block.T, t).numpy(), block.T.numpy() @ expected,
                                   atol=1e-5)


@pytest.mark.parametrize("variant", ["afrnn", "frnn", "afrnn-sequential", "lstm"])
def test_backward_products_equal_autograd_through_the_forward_pass(variant):
    module = small_model(variant)
    x, _, states, drive = trajectory(module, steps=7)
    seen = []
    for t, product, log_scale in backward_products(step_jacobians(module, states, drive)):
        expected = product_oracle(module, x, states, t)
        np.testing.assert_allclose(np.exp(log_scale) * product.numpy(), expected, atol=2e-5, rtol=1e-4)
        seen.append(t)
    assert seen == list(range(6, -1, -1))


def test_backward_products_rescale_without_underflow():
    # J_t = 1e-30 · I: the product after 40 steps is 1e-1200, far below float64's range
    jacobians = DenseJacobians(torch.full((40, 1, 1), 1e-30, dtype=torch.float64))
    *_, (t, product, log_scale) = backward_products(jacobians)
    assert t == 0
    assert np.log(float(product[0, 0])) + log_scale == pytest.approx(40 * np.log(1e-30), rel=1e-12)


# -- Theorem 3 and the continuous spectrum --------------------------------------------------------
def oracle_max_real(module, states, drive) -> np.ndarray:
    """max Re λ(D_t B) for every t from NumPy's eigvals of the dense product diag(d_t) · B."""
    B = module.coupling_matrix().detach().double().numpy()
    pre = states[:-1].double().numpy() @ B.T + drive.double().numpy()
    d = 1.0 - np.tanh(pre) ** 2
    return np.array([np.linalg.eigvals(np.diag(row) @ B).real.max() for row in d])


@pytest.mark.parametrize("variant", ["afrnn", "afrnn-3", "arnn", "2-arnn", "frnn"])
def test_exact_spectrum_equals_numpy_and_the_bound_holds(variant):
    module = small_model(variant)
    _, h0, states, drive = trajectory(module, steps=10)
    report = stability_report(module, trajectory(module, steps=10)[0], h0=h0,
                              sections={"spectrum"}, spectrum_samples=10)
    spectrum = report.spectrum
    assert spectrum.exact_steps == list(range(10))
    np.testing.assert_allclose(spectrum.max_real, oracle_max_real(module, states, drive), atol=1e-6)
    assert all(b >= e - 1e-9 for b, e in zip(spectrum.max_real_bound, spectrum.max_real, strict=True))


def test_afrnn_with_gamma_zero_has_no_positive_real_part_at_any_step():
    module = small_model("afrnn", gamma=0.0, layer_sizes=(12, 10), init_std=3.0)
    x, h0, _, _ = trajectory(module, steps=20)
    spectrum = stability_report(module, x, h0=h0, sections={"spectrum"}, spectrum_samples=20).spectrum
    assert len(spectrum.max_real) == 20
    assert max(spectrum.max_real) <= 1e-6
    assert max(spectrum.max_real_bound) <= 1e-6
    # and the spectrum is not trivially zero: imaginary parts are O(1)
    assert max(abs(v) for sample in spectrum.eigenvalues for v in sample.imag) > 0.1


def test_two_arnn_with_gamma_zero_has_no_positive_real_part_at_any_step():
    module = small_model("2-arnn", gamma=0.0, layer_sizes=(12, 10), init_std=3.0)
    x, h0, states, drive = trajectory(module, steps=20)
    report = stability_report(module, x, h0=h0, sections={"theorem", "spectrum"}, spectrum_samples=20)
    assert report.theorem.coupling_structure == "block_triangular"
    assert max(report.spectrum.max_real) <= 1e-6
    np.testing.assert_allclose(report.spectrum.max_real, oracle_max_real(module, states, drive), atol=1e-6)


def test_random_frnn_has_eigenvalues_with_positive_real_part():
    module = small_model("frnn", layer_sizes=(12, 10), init_std=3.0)
    x, h0, _, _ = trajectory(module, steps=20)
    report = stability_report(module, x, h0=h0, sections={"theorem", "spectrum"}, spectrum_samples=20)
    assert max(report.spectrum.max_real) > 1e-2
    assert report.theorem.coupling_structure == "general"
    assert not report.theorem.theorem3_satisfied and not report.theorem.stability_guaranteed
    assert report.summary.theorem_holds is False


@pytest.mark.parametrize("variant", ["afrnn", "afrnn-3", "arnn"])
def test_theorem_section_of_antisymmetric_couplings(variant):
    module = small_model(variant)
    x, _, _, _ = trajectory(module)
    theorem = stability_report(module, x, sections={"theorem"}).theorem
    assert theorem.antisymmetry_residual == 0.0
    assert theorem.symmetric_part_max_eigenvalue == pytest.approx(-0.05, abs=1e-6)
    assert theorem.coupling_structure == "antisymmetric"
    assert theorem.theorem3_satisfied and theorem.stability_guaranteed and theorem.model_claims_theorem


def test_theorem_section_of_two_arnn_reports_the_true_symmetric_part():
    module = small_model("2-arnn")
    x, _, _, _ = trajectory(module)
    theorem = stability_report(module, x, sections={"theorem"}).theorem
    B = module.coupling_matrix().detach().double().numpy()
    A = B + 0.05 * np.eye(B.shape[0])
    assert theorem.antisymmetry_residual == pytest.approx(np.linalg.norm(A + A.T), rel=1e-6)
    # without feedback, (B + Bᵀ)/2 has the ±W/2 blocks, so its top eigenvalue exceeds −γ
    assert theorem.symmetric_part_max_eigenvalue == pytest.approx(np.linalg.eigvalsh((B + B.T) / 2).max(),
                                                                  abs=1e-9)
    assert theorem.symmetric_part_max_eigenvalue > -0.05 + 0.1
    assert theorem.spectral_blocks == [(0, 6), (6, 11)]
    assert theorem.block_symmetric_max_eigenvalue == pytest.approx([-0.05, -0.05], abs=1e-6)
    assert not theorem.theorem3_satisfied and theorem.stability_guaranteed


def test_continuous_eigenvalues_handle_saturated_units():
    # d_i = 0 (a saturated tanh) makes D B singular; the similarity D^1/2 B D^1/2 needs no inverse
    B = torch.tensor([[-0.1, 2.0, 0.5], [-2.0, -0.1, 1.0], [0.3, -1.0, -0.1]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64)
    structure = coupling_structure(B, gamma=0.1, layer_bounds=[0, 3])
    ours = np.sort_complex(continuous_eigenvalues(B, d, structure)[0].numpy())
    expected = np.sort_complex(np.linalg.eigvals(np.diag(d[0].numpy()) @ B.numpy()))
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    assert float(max_real_bounds(d, structure)[0]) >= expected.real.max() - 1e-12


def test_sample_steps_cover_both_ends_and_the_worst_bounds():
    assert sample_steps(5, 10) == [0, 1, 2, 3, 4]
    assert sample_steps(101, 5) == [0, 25, 50, 75, 100]
    bounds = torch.zeros(100, dtype=torch.float64)
    bounds[37] = 1.0
    chosen = spectrum_steps(bounds, 8)
    assert 37 in chosen and 0 in chosen and len(chosen) <= 8


# -- discrete step -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["afrnn", "frnn", "afrnn-sequential"])
def test_step_spectral_radius_equals_numpy_eigenvalues_of_the_step_jacobian(variant):
    module = small_model(variant)
    x, h0, states, drive = trajectory(module, steps=8)
    discrete = stability_report(module, x, h0=h0, sections={"discrete"}, spectrum_samples=8).discrete
    expected = [np.abs(np.linalg.eigvals(step_jacobian_oracle(module, states[t], drive[t]))).max()
                for t in discrete.exact_steps]
    np.testing.assert_allclose(discrete.spectral_radius, expected, rtol=1e-5)
    B = module.coupling_matrix().detach().double().numpy()
    pre = states[:-1].double().numpy() @ B.T + drive.double().numpy()
    euler = [np.abs(1 + 0.1 * np.linalg.eigvals(np.diag(1 - np.tanh(p) ** 2) @ B)).max() for p in pre]
    np.testing.assert_allclose(discrete.euler_factor, euler, rtol=1e-6)   # d_t in float32
    assert discrete.euler_margin == pytest.approx(1 - max(euler), abs=1e-6)


# -- gradient propagation -------------------------------------------------------------------------
def oracle_products(module, states, drive) -> list[np.ndarray]:
    """P_t = ∂z_T/∂z_t for t = 0 … T−1 by multiplying the one-step autograd Jacobians."""
    steps = drive.shape[0]
    products = [None] * steps
    current = np.eye(states.shape[1])
    for t in range(steps - 1, -1, -1):
        current = current @ step_jacobian_oracle(module, states[t], drive[t])
        products[t] = current
    return products


@pytest.mark.parametrize("variant", ["afrnn", "lstm"])
def test_gradient_section_against_dense_products(variant):
    module = small_model(variant)
    x, h0, states, drive = trajectory(module, steps=12)
    gradients = stability_report(module, x, h0=h0, sections={"gradients"}, gradient_samples=4).gradients
    products = oracle_products(module, states, drive)
    norms = np.array([np.linalg.norm(p, 2) for p in products])
    assert gradients.exact_steps == [0, 4, 7, 11]
    np.testing.assert_allclose(gradients.spectral_norm_exact, norms[gradients.exact_steps], rtol=1e-5)
    np.testing.assert_allclose(gradients.mean_abs_eigenvalue,
                               [np.abs(np.linalg.eigvals(products[t])).mean() for t in gradients.exact_steps],
                               rtol=1e-4)
    assert gradients.norm_ratio == pytest.approx(norms[0], rel=1e-5)
    # elsewhere: power iteration, a lower bound that the warm start keeps close
    estimates = np.array(gradients.spectral_norm)
    assert np.all(estimates <= norms * (1 + 1e-6))
    assert np.all(estimates >= 0.5 * norms)


def test_lstm_gradients_vanish_and_the_horizon_is_where_the_norm_drops_below_1e_minus_3():
    torch.manual_seed(3)
    module = LSTMBaseline(LSTMConfig(input_size=2, hidden_size=4, num_layers=1, output_size=2))
    x, h0, states, drive = trajectory(module, steps=60)
    gradients = stability_report(module, x, h0=h0, sections={"gradients"}, gradient_samples=8).gradients
    norms = np.array([np.linalg.norm(p, 2) for p in oracle_products(module, states, drive)])
    assert gradients.horizon_kind == "vanishing" and gradients.regime == "vanishing"
    h = gradients.horizon_step
    assert norms[h] < 1e-3
    assert np.all(norms[h + 1:] >= 1e-3)
    assert gradients.horizon_lag == 60 - h


def test_exploding_frnn_gets_an_exploding_horizon():
    module = small_model("frnn", layer_sizes=(10, 10), init_std=1.0, epsilon=0.5, gamma=0.0)
    x, h0, states, drive = trajectory(module, steps=80)
    report = stability_report(module, x, h0=h0, sections={"gradients", "lyapunov"}, lyapunov_k=3)
    norms = np.array([np.linalg.norm(p, 2) for p in oracle_products(module, states, drive)])
    assert report.gradients.horizon_kind == "exploding"
    assert norms[report.gradients.horizon_step] > 1e3
    assert report.summary.verdict == "unstable"


# -- Lyapunov exponents ---------------------------------------------------------------------------
def test_lyapunov_exponents_of_a_diagonal_linear_system_are_log_abs_a():
    a = torch.tensor([1.5, 0.9, -0.5, 0.2, 1.1], dtype=torch.float64)
    steps = 4000
    jacobians = DenseJacobians(torch.diag(a).expand(steps, 5, 5))
    expected = np.sort(np.log(np.abs(a.numpy())))[::-1]
    np.testing.assert_allclose(lyapunov_exponents(jacobians, 5, seed=0).numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(lyapunov_exponents(jacobians, 2, seed=1).numpy(), expected[:2], atol=1e-3)


def test_lyapunov_exponents_of_a_scaled_rotation_are_a_double_log_scale():
    theta, scale = 0.7, 1.02
    rotation = scale * torch.tensor([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]],
                                    dtype=torch.float64)
    exponents = lyapunov_exponents(DenseJacobians(rotation.expand(500, 2, 2)), 2).numpy()
    np.testing.assert_allclose(exponents, [np.log(scale)] * 2, atol=1e-9)


def test_lyapunov_k_out_of_range_is_rejected():
    jacobians = DenseJacobians(torch.eye(3).expand(4, 3, 3))
    for k in (0, 4):
        with pytest.raises(ValueError, match="lyapunov_k must be between 1 and the state size 3"):
            lyapunov_exponents(jacobians, k)


def test_report_lyapunov_exponents_equal_qr_on_autograd_jacobians():
    module = small_model("afrnn-sequential")
    x, h0, states, drive = trajectory(module, steps=30)
    oracle = np.stack([step_jacobian_oracle(module, states[t], drive[t]) for t in range(30)])
    expected = lyapunov_exponents(DenseJacobians(torch.from_numpy(oracle)), 4, seed=5)
    lyapunov = stability_report(module, x, h0=h0, sections={"lyapunov"}, lyapunov_k=4, seed=5).lyapunov
    np.testing.assert_allclose(lyapunov.exponents, expected.numpy(), atol=1e-6)
    assert lyapunov.growth_factor == pytest.approx(np.exp(30 * lyapunov.top))


def test_saturated_units_are_counted_and_give_a_zero_eigenvalue_despite_gamma():
    module = small_model("afrnn")                      # γ = 0.05
    x = torch.full((1, 5, 2), 200.0)                   # drives every layer-1 tanh to ±1 exactly
    spectrum = stability_report(module, x, sections={"spectrum"}, spectrum_samples=5).spectrum
    assert spectrum.zero_derivative_units == 6
    assert abs(spectrum.max_real_eigenvalue) <= 1e-12
    unsaturated = stability_report(module, 0.01 * x, sections={"spectrum"}, spectrum_samples=5).spectrum
    assert unsaturated.zero_derivative_units == 0 and unsaturated.max_real_eigenvalue < -1e-3
