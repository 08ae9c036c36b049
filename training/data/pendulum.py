"""The double pendulum of paper eqs. 19–20: the physics, the data set and the network's view of it.

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

Data set (paper §5.3): m1 = m2 = 1 kg, L1 = L2 = 1 m, g = 9.8 m/s²; 1000 trajectories whose four
initial values are drawn uniformly from [−90°, 90°] (converted to rad and rad/s) with a seeded numpy
generator; 30 points at dt = 0.1 s (0 … 2.9 s); the first 900 trajectories train, the last 100 test.
It is cached as ``.npz`` with its parameters and a content hash.

Network view: the input has 29 steps, the initial state at step 0 and the constant 1.0 (all four
inputs) at steps 1 … 28; the targets are the states 1 … 29, one per input step (not autoregressive).
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from training.data.errors import DataFormatError

STATE_NAMES = ("theta1", "theta2", "omega1", "omega2")
STATE_UNITS = ("rad", "rad", "rad/s", "rad/s")
DT = 0.1
M1 = M2 = 1.0
L1 = L2 = 1.0
G = 9.8
RTOL = 1e-10
ATOL = 1e-10
METHOD = "DOP853"
PLACEHOLDER = 1.0                      # the network input at every step after the first
INITIAL_RANGE_DEG = (-90.0, 90.0)
INITIAL_RANGE = tuple(np.deg2rad(INITIAL_RANGE_DEG).tolist())
CACHE_FORMAT_VERSION = 1


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


def simulate(initial_states: np.ndarray, steps: int, dt: float = DT) -> np.ndarray:
    """Integrate eqs. 19–20 from each initial state; returns (N, steps + 1, 4), row 0 = the initial state.

    Args:
        initial_states: (N, 4) or (4,) array of [θ1, θ2, ω1, ω2] in rad and rad/s.
        steps: number of dt intervals to integrate (29 gives the data set's 30 points).
        dt: sampling interval in seconds.
    """
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


def network_inputs(initial_states: Tensor, steps: int = 29) -> Tensor:
    """The network's input sequence (N, steps, 4): the initial state, then the placeholder 1.0."""
    if initial_states.dim() != 2 or initial_states.shape[1] != 4:
        raise ValueError(f"initial_states must have shape (N, 4), got {tuple(initial_states.shape)}")
    inputs = torch.full((initial_states.shape[0], steps, 4), PLACEHOLDER,
                        dtype=initial_states.dtype, device=initial_states.device)
    inputs[:, 0] = initial_states
    return inputs


@dataclass(frozen=True)
class PendulumDataSpec:
    """Everything that determines the generated data set (and so its cache file)."""

    trajectories: int = 1000
    points: int = 30
    dt: float = DT
    seed: int = 2022
    train: int = 900
    m1: float = M1
    m2: float = M2
    l1: float = L1
    l2: float = L2
    g: float = G
    initial_range_deg: tuple[float, float] = INITIAL_RANGE_DEG
    method: str = METHOD
    rtol: float = RTOL
    atol: float = ATOL
    format_version: int = CACHE_FORMAT_VERSION

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def generate(spec: PendulumDataSpec) -> np.ndarray:
    """The trajectories (trajectories, points, 4) of a spec, freshly integrated."""
    if (spec.m1, spec.m2, spec.l1, spec.l2, spec.g, spec.method, spec.rtol, spec.atol) != \
            (M1, M2, L1, L2, G, METHOD, RTOL, ATOL):
        raise ValueError("the physical constants and solver settings are fixed by this module; "
                         "only trajectories, points, dt, seed and train may vary")
    rng = np.random.default_rng(spec.seed)
    initial = np.deg2rad(rng.uniform(*spec.initial_range_deg, size=(spec.trajectories, 4)))
    return simulate(initial, spec.points - 1, spec.dt)


def content_hash(states: np.ndarray, spec: PendulumDataSpec) -> str:
    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(states, dtype=np.float64).tobytes())
    return digest.hexdigest()


def load_or_generate(cache_dir: Path, spec: PendulumDataSpec = PendulumDataSpec(),
                     verbose: bool = True) -> tuple[np.ndarray, str]:
    """(trajectories (N, points, 4) float64, content hash), from the cache or generated and cached."""
    path = Path(cache_dir) / f"pendulum-{spec.key()}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cached:
                states, stored_hash = cached["states"], str(cached["content_hash"])
                stored_spec = json.loads(str(cached["spec"]))
        except (OSError, ValueError, KeyError) as err:
            raise DataFormatError(f"{path}: unreadable pendulum cache ({err}); "
                                  "delete it to regenerate") from err
        if stored_spec != json.loads(json.dumps(asdict(spec))) or content_hash(states, spec) != stored_hash:
            raise DataFormatError(f"{path}: cached trajectories do not match their parameters or content "
                                  "hash; delete the file to regenerate")
        return states, stored_hash
    if verbose:
        print(f"generating {spec.trajectories} double-pendulum trajectories (DOP853, rtol=atol=1e-10) "
              f"into {path}", flush=True)
    states = generate(spec)
    digest = content_hash(states, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")    # DDP ranks may write at once
    np.savez(tmp, states=states, content_hash=np.array(digest), spec=np.array(json.dumps(asdict(spec))))
    tmp.replace(path)
    return states, digest


@dataclass
class PendulumTrajectories:
    """Trajectories (N, points, 4) float32, served as (network inputs, next-state targets) batches."""

    states: Tensor

    def __post_init__(self):
        if self.states.dim() != 3 or self.states.shape[2] != 4 or self.states.shape[1] < 2:
            raise ValueError(f"states must have shape (N, points ≥ 2, 4), got {tuple(self.states.shape)}")

    def __len__(self) -> int:
        return self.states.shape[0]

    @property
    def sequence_length(self) -> int:
        return self.states.shape[1] - 1

    @property
    def channels(self) -> int:
        return 4

    def subset(self, indices: Tensor) -> "PendulumTrajectories":
        return PendulumTrajectories(self.states[indices])

    def batch(self, indices: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(inputs (B, points − 1, 4), targets = states 1 … points − 1 (B, points − 1, 4))."""
        states = self.states[indices].to(device)
        return network_inputs(states[:, 0], self.sequence_length), states[:, 1:]


def load_pendulum(cache_dir: Path, spec: PendulumDataSpec = PendulumDataSpec()
                  ) -> tuple[PendulumTrajectories, PendulumTrajectories, str]:
    """(train, test, content hash): the first ``spec.train`` trajectories train, the rest test."""
    states, digest = load_or_generate(cache_dir, spec)
    tensor = torch.from_numpy(states.astype(np.float32))
    return PendulumTrajectories(tensor[:spec.train]), PendulumTrajectories(tensor[spec.train:]), digest
