"""The IMEX step form (``AFRNNConfig(discretisation="imex")``): the model against a naive solver of the
trapezoidal equation in the ODE's own coordinates, the step radius ≤ 1 that the module docstring
proves (and that explicit Euler breaks on the same weights), the Theorem 3 check, TorchScript, the
fast C path, and the stability report's discrete section against autograd."""

import shutil
import warnings

import pytest
import torch

from model import AFRNN, AFRNNConfig
from model.inference import FastRecurrence
from model.stability import stability_report

torch.set_num_threads(1)


def imex(**overrides) -> AFRNN:
    torch.manual_seed(0)
    settings = dict(input_size=2, layer_sizes=(6, 5), output_size=3, epsilon=0.3, gamma=0.05, init_std=4.0,
                    discretisation="imex")
    settings.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AFRNN(AFRNNConfig(**settings))


def naive_states(model: AFRNN, x: torch.Tensor) -> list[torch.Tensor]:
    """z_1 … z_T in the ODE's coordinates, each step solved from its defining equation

        (I − ε/2·B) z_{t+1} = (I + ε/2·B) z_t + ε (tanh(B z_t + u_t) − B z_t)

    with a dense linear solve per step: no B̃, no change of coordinates, nothing shared with the model
    but B, the input drive and z_0."""
    B = model.coupling_matrix().detach()
    eye = torch.eye(B.shape[0], dtype=B.dtype)
    eps = model.epsilon
    drive = model.input_drive(x).detach()
    z = torch.full((x.shape[0], B.shape[0]), model.initial_value, dtype=B.dtype)
    states = []
    for t in range(x.shape[1]):
        linear = z @ B.t()
        rhs = z @ (eye + 0.5 * eps * B).t() + eps * (torch.tanh(linear + drive[:, t]) - linear)
        z = torch.linalg.solve(eye - 0.5 * eps * B, rhs.t()).t()
        states.append(z)
    return states


@pytest.mark.parametrize("initial_state", [0.0, 1.0])
def test_the_model_solves_the_trapezoidal_equation_of_each_step(initial_state):
    model = imex(initial_state=initial_state).double()
    x = torch.randn(4, 25, 2, dtype=torch.float64)
    states = naive_states(model, x)
    top = model.layer_bounds[-2]
    expected = model.head(torch.stack(states, dim=1)[..., top:])
    torch.testing.assert_close(model(x, every_step=True), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model(x), expected[:, -1], rtol=1e-10, atol=1e-12)
    # the state the model carries is w = (I − ε/2·B) z
    B = model.coupling_matrix().detach()
    implicit = torch.eye(B.shape[0], dtype=B.dtype) - 0.5 * model.epsilon * B
    _, carried = model.forward_with_states(x)
    torch.testing.assert_close(carried[:, -1], states[-1] @ implicit.t(), rtol=1e-10, atol=1e-12)


def test_the_euler_form_is_unchanged():
    euler = imex(discretisation="euler").double()
    torch.testing.assert_close(euler.step_coupling(), euler.coupling_matrix())


@pytest.mark.parametrize("epsilon, init_std", [(0.1, 2.0), (0.5, 6.0), (2.0, 6.0)])
def test_every_step_radius_is_at_most_one_where_explicit_euler_exceeds_it(epsilon, init_std):
    """ρ((I − D) + D C) ≤ 1 for every diagonal 0 ≤ D ≤ I (module docstring), here on autograd Jacobians
    of the model's own step at random states and inputs, for step sizes up to ε‖A‖₂ ≫ 1; the
    explicit-Euler step of the same weights is expansive at the same points."""
    model = imex(layer_sizes=(12, 10), epsilon=epsilon, init_std=init_std, gamma=0.0).double()
    euler = imex(layer_sizes=(12, 10), epsilon=epsilon, init_std=init_std, gamma=0.0,
                 discretisation="euler").double()
    generator = torch.Generator().manual_seed(1)
    worst_imex, worst_euler = 0.0, 0.0
    for _ in range(20):
        w = torch.randn(22, generator=generator, dtype=torch.float64) * 2
        u = torch.randn(22, generator=generator, dtype=torch.float64) * 2
        for m, name in ((model, "imex"), (euler, "euler")):
            jacobian = torch.autograd.functional.jacobian(lambda s, m=m, u=u: m.step(s[None], u[None])[0], w)
            radius = float(torch.linalg.eigvals(jacobian).abs().max())
            if name == "imex":
                worst_imex = max(worst_imex, radius)
            else:
                worst_euler = max(worst_euler, radius)
    assert worst_imex <= 1.0 + 1e-10
    assert worst_euler > 1.0 + 1e-3


def test_at_unit_slope_and_no_damping_the_step_is_the_orthogonal_cayley_transform():
    """D = I, γ = 0: the step's Jacobian I + ε B̃ is C = (I − ε/2·A)⁻¹(I + ε/2·A), orthogonal: the
    linear part is norm-preserving, as the continuous-time flow of an antisymmetric A is."""
    model = imex(gamma=0.0, epsilon=0.7).double()
    step = torch.eye(model.state_size, dtype=torch.float64) + model.epsilon * model.step_coupling().detach()
    torch.testing.assert_close(step.t() @ step, torch.eye(model.state_size, dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_theorem_3_and_the_discrete_section_in_the_stability_report():
    model = imex(epsilon=0.5, init_std=6.0).double()
    x = torch.randn(30, 2, dtype=torch.float64)
    report = stability_report(model, x, lyapunov_k=4, spectrum_samples=30)
    assert report.model.discretisation == "imex"
    assert report.theorem.stability_guaranteed                  # on B itself: A is antisymmetric
    radius = report.discrete.spectral_radius
    assert max(radius) <= 1.0 + 1e-9 < report.discrete.max_euler_factor   # explicit Euler would expand
    # the section's radii against autograd Jacobians of the model's own step at the same states
    _, states = model.forward_with_states(x[None])
    drive = model.input_drive(x[None])[0]
    for k, t in enumerate(report.discrete.exact_steps[:5]):
        jacobian = torch.autograd.functional.jacobian(
            lambda s, t=t: model.step(s[None], drive[t][None])[0], states[0, t].detach())
        assert radius[k] == pytest.approx(float(torch.linalg.eigvals(jacobian).abs().max()), rel=1e-9)
    euler_report = stability_report(imex(epsilon=0.5, init_std=6.0, discretisation="euler").double(), x,
                                    lyapunov_k=4, spectrum_samples=30)
    assert euler_report.model.discretisation == "euler"
    assert euler_report.discrete.max_step_spectral_radius > 1.0


def test_torchscript_runs_the_same_step():
    model = imex(layer_sizes=(16, 16), input_size=1, epsilon=0.2, init_std=2.0).eval()
    x = torch.rand(3, 50, 1)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(scripted.step_coupling(), model.step_coupling(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(scripted.initial_state(2), model.initial_state(2))


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_the_fast_c_path_runs_the_imex_step():
    """The C loop knows only w ← w + ε tanh(B̃ w + u): it takes B̃ from ``step_coupling`` and the
    readout (z = P w) from the model, so the IMEX form needs nothing of its own there."""
    model = imex(layer_sizes=(16, 16), input_size=1, epsilon=0.2, init_std=2.0).eval()
    x = torch.rand(3, 50, 1)
    fast, why = FastRecurrence.from_module(torch.jit.script(model))
    assert fast is not None, why
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)


def test_the_sequential_update_has_no_imex_form():
    with pytest.raises(ValueError, match="sequential"):
        AFRNNConfig(layer_sizes=(4, 4), discretisation="imex", update="sequential")
    with pytest.raises(ValueError, match="discretisation must be one of"):
        AFRNNConfig(layer_sizes=(4, 4), discretisation="rk4")
