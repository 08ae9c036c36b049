"""The double-pendulum generator against independent physics: energy conservation and a fine-step RK4
of the Lagrangian equations in mass-matrix form (not the paper's eqs. 19–20 that the generator uses).
The data set built from it is tested in ``tests/training/test_pendulum_data.py``."""

import numpy as np
import pytest

from physics.pendulum import DT, simulate, total_energy

ENERGY_DRIFT_BOUND_J = 1e-6       # |E(t) − E(0)| over 2.9 s; the solver's rtol = atol = 1e-10
RK4_AGREEMENT_BOUND = 1e-6        # max |solve_ivp − RK4(h = 2.5e-4 s)| over all 30 samples


def lagrangian_derivatives(state: np.ndarray) -> np.ndarray:
    """ds/dt from the Euler–Lagrange equations M(θ) θ'' = f(θ, ω), solved as a 2×2 linear system.

    M = [[(m1 + m2) L1²,      m2 L1 L2 cos Δ],
         [m2 L1 L2 cos Δ,     m2 L2²       ]]
    f = [−m2 L1 L2 ω2² sin Δ − (m1 + m2) g L1 sin θ1,
          m2 L1 L2 ω1² sin Δ − m2 g L2 sin θ2]
    """
    m1 = m2 = 1.0
    l1 = l2 = 1.0
    g = 9.8
    th1, th2, w1, w2 = state.T
    delta = th1 - th2
    a = np.full_like(th1, (m1 + m2) * l1 ** 2)
    b = m2 * l1 * l2 * np.cos(delta)
    d = np.full_like(th1, m2 * l2 ** 2)
    f1 = -m2 * l1 * l2 * w2 ** 2 * np.sin(delta) - (m1 + m2) * g * l1 * np.sin(th1)
    f2 = m2 * l1 * l2 * w1 ** 2 * np.sin(delta) - m2 * g * l2 * np.sin(th2)
    det = a * d - b * b
    acc1 = (d * f1 - b * f2) / det
    acc2 = (a * f2 - b * f1) / det
    return np.stack([w1, w2, acc1, acc2], axis=1)


def rk4(initial: np.ndarray, steps: int, dt: float, substeps: int) -> np.ndarray:
    h = dt / substeps
    s = initial.copy()
    out = [s.copy()]
    for _ in range(steps):
        for _ in range(substeps):
            k1 = lagrangian_derivatives(s)
            k2 = lagrangian_derivatives(s + 0.5 * h * k1)
            k3 = lagrangian_derivatives(s + 0.5 * h * k2)
            k4 = lagrangian_derivatives(s + h * k3)
            s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(s.copy())
    return np.stack(out, axis=1)


@pytest.fixture(scope="module")
def initial_states():
    rng = np.random.default_rng(7)
    return np.deg2rad(rng.uniform(-90, 90, size=(8, 4)))


def test_simulate_shape_and_first_row(initial_states):
    out = simulate(initial_states, steps=29)
    assert out.shape == (8, 30, 4)
    np.testing.assert_array_equal(out[:, 0], initial_states)


def test_energy_is_conserved_within_bound(initial_states):
    out = simulate(initial_states, steps=29)
    energy = total_energy(out)
    drift = np.abs(energy - energy[:, :1]).max()
    assert drift < ENERGY_DRIFT_BOUND_J, f"energy drift {drift:.3g} J"


def test_total_energy_formula_at_known_states():
    # hanging at rest: V = −(m1+m2) g L1 − m2 g L2 = −3 g; both arms horizontal, at rest: 0
    assert total_energy(np.zeros(4)) == pytest.approx(-3 * 9.8)
    assert total_energy(np.array([np.pi / 2, np.pi / 2, 0, 0])) == pytest.approx(0, abs=1e-12)
    # ω1 = 1 alone: T = ½ (m1+m2) L1² = 1, plus the potential at rest
    assert total_energy(np.array([0, 0, 1.0, 0])) == pytest.approx(1 - 3 * 9.8)


def test_solve_ivp_agrees_with_fine_step_rk4_of_the_lagrangian(initial_states):
    ours = simulate(initial_states[:4], steps=29)
    reference = rk4(initial_states[:4], steps=29, dt=DT, substeps=400)
    error = np.abs(ours - reference).max()
    assert error < RK4_AGREEMENT_BOUND, f"max deviation {error:.3g}"


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError, match=r"initial_states must have shape \(N, 4\)"):
        simulate(np.zeros((2, 3)), steps=5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        simulate(np.zeros(4), steps=0)
    with pytest.raises(ValueError, match="finite"):
        simulate(np.array([np.nan, 0, 0, 0]), steps=3)
