"""The double pendulum of paper eqs. 19–20: the equations of motion, the reference integrator, the energy.

State s = [θ1, θ2, ω1, ω2] (angles from the vertical in rad, angular velocities in rad/s), with
ω = θ'. With masses m1, m2, lengths L1, L2 and gravity g, Δ = θ1 − θ2 and
M = 2 m1 + m2 − m2 cos(2θ1 − 2θ2):

    θ1'' = [−g (2 m1 + m2) sin θ1 − m2 g sin(θ1 − 2θ2)
            − 2 sin Δ · m2 (ω2² L2 + ω1² L1 cos Δ)] / (L1 M)                                 (19)
    θ2'' = [2 sin Δ · (ω1² L1 (m1 + m2) + g (m1 + m2) cos θ1 + ω2² L2 m2 cos Δ)] / (L2 M)     (20)

The total energy (conserved; used to check the integrator) is

    E = ½ (m1 + m2) L1² ω1² + ½ m2 L2² ω2² + m2 L1 L2 ω1 ω2 cos Δ
        − (m1 + m2) g L1 cos θ1 − m2 g L2 cos θ2          [J].

Integration: ``scipy.integrate.solve_ivp`` with DOP853 (8th-order Dormand–Prince), rtol = atol = 1e-10,
each trajectory on its own (so a trajectory does not depend on what else is in the batch), sampled
at t = 0, dt, …, steps·dt. The service's reference solver is ``simulate`` itself.

``simulate_joint`` integrates K trajectories as one system of 4K equations, for large generated data
sets (one right-hand-side call per stage for all K instead of K calls: about 20× faster). The solver
accepts a step when the RMS of the scaled local errors e_i / (atol + rtol |y_i|) over the n = 4K
components is ≤ 1, which bounds each component's scaled error only by √n. Dividing rtol and atol by
√n restores the per-component bound: every component of every trajectory meets at least the
tolerance that ``simulate`` gives it alone. The steps are shared, so a trajectory's rounding depends on
its batch (differences of order the tolerance; chaotic trajectories amplify them over time).

The initial states of the data set, and the service's valid range, are uniform in [−90°, 90°] for all
four values (paper §5.3), in rad and rad/s.
"""

import numpy as np

STATE_NAMES = ("theta1", "theta2", "omega1", "omega2")
STATE_UNITS = ("rad", "rad", "rad/s", "rad/s")
DT = 0.1
M1 = M2 = 1.0
L1 = L2 = 1.0
G = 9.8
RTOL = 1e-10
ATOL = 1e-10
METHOD = "DOP853"
INITIAL_RANGE_DEG = (-90.0, 90.0)
INITIAL_RANGE = tuple(np.deg2rad(INITIAL_RANGE_DEG).tolist())


def derivatives(_t: float, state: np.ndarray) -> np.ndarray:
    """ds/dt = [ω1, ω2, θ1'', θ2''] from eqs. 19–20; ``state`` is (4,) or (4, K) (vectorised)."""
    th1, th2, w1, w2 = state
    delta = th1 - th2
    denominator = 2 * M1 + M2 - M2 * np.cos(2 * th1 - 2 * th2)
    acc1 = (-G * (2 * M1 + M2) * np.sin(th1) - M2 * G * np.sin(th1 - 2 * th2)
            - 2 * np.sin(delta) * M2 * (w2 ** 2 * L2 + w1 ** 2 * L1 * np.cos(delta))) / (L1 * denominator)
    acc2 = (2 * np.sin(delta) * (w1 ** 2 * L1 * (M1 + M2) + G * (M1 + M2) * np.cos(th1)
                                 + w2 ** 2 * L2 * M2 * np.cos(delta))) / (L2 * denominator)
    return np.stack([w1, w2, acc1, acc2])


def total_energy(states: np.ndarray) -> np.ndarray:
    """Kinetic + potential energy in joules of states (..., 4) = [θ1, θ2, ω1, ω2] → (...)."""
    states = np.asarray(states, dtype=np.float64)
    th1, th2, w1, w2 = np.moveaxis(states, -1, 0)
    kinetic = (0.5 * (M1 + M2) * L1 ** 2 * w1 ** 2 + 0.5 * M2 * L2 ** 2 * w2 ** 2
               + M2 * L1 * L2 * w1 * w2 * np.cos(th1 - th2))
    potential = -(M1 + M2) * G * L1 * np.cos(th1) - M2 * G * L2 * np.cos(th2)
    return kinetic + potential


def _checked_initial(initial_states: np.ndarray, steps: int, dt: float) -> np.ndarray:
    initial = np.asarray(initial_states, dtype=np.float64)
    if initial.ndim == 1:
        initial = initial[None]
    if initial.ndim != 2 or initial.shape[1] != 4:
        raise ValueError(f"initial_states must have shape (N, 4) [theta1, theta2, omega1, omega2], "
                         f"got {initial.shape}")
    if not np.all(np.isfinite(initial)):
        raise ValueError("initial_states must be finite")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    return initial


def simulate(initial_states: np.ndarray, steps: int, dt: float = DT) -> np.ndarray:
    """Integrate eqs. 19–20 from each initial state; returns (N, steps + 1, 4), row 0 = the initial state.

    Args:
        initial_states: (N, 4) or (4,) array of [θ1, θ2, ω1, ω2] in rad and rad/s.
        steps: number of dt intervals to integrate (29 gives the data set's 30 points).
        dt: sampling interval in seconds.
    """
    initial = _checked_initial(initial_states, steps, dt)
    from scipy.integrate import solve_ivp  # imported here: scipy costs ~1 s at start-up

    times = np.arange(int(steps) + 1) * float(dt)
    out = np.empty((initial.shape[0], times.size, 4))
    for i, s0 in enumerate(initial):
        solution = solve_ivp(derivatives, (0.0, times[-1]), s0, method=METHOD, t_eval=times,
                             rtol=RTOL, atol=ATOL)
        if not solution.success:
            raise RuntimeError(f"solve_ivp failed for initial state {s0.tolist()}: {solution.message}")
        out[i] = solution.y.T
        out[i, 0] = s0
    return out


def simulate_joint(initial_states: np.ndarray, steps: int, dt: float = DT) -> np.ndarray:
    """``simulate``'s result for all initial states integrated as one system (module docstring).

    Same arguments and shape (N, steps + 1, 4); rtol and atol are divided by √(4N) so that each
    component meets ``simulate``'s per-trajectory tolerance.
    """
    initial = _checked_initial(initial_states, steps, dt)
    from scipy.integrate import solve_ivp

    count = initial.shape[0]
    shrink = np.sqrt(4 * count)
    times = np.arange(int(steps) + 1) * float(dt)

    def joint_derivatives(t: float, flat: np.ndarray) -> np.ndarray:
        return derivatives(t, flat.reshape(4, count)).ravel()

    solution = solve_ivp(joint_derivatives, (0.0, times[-1]), initial.T.ravel(), method=METHOD,
                         t_eval=times, rtol=RTOL / shrink, atol=ATOL / shrink)
    if not solution.success:
        raise RuntimeError(f"solve_ivp failed for a batch of {count} initial states: {solution.message}")
    out = solution.y.reshape(4, count, times.size).transpose(1, 2, 0).copy()
    out[:, 0] = initial
    return out
