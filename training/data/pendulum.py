"""The double-pendulum data set (paper §5.3), generated with ``physics.pendulum`` and cached.

Data set (paper §5.3): m1 = m2 = 1 kg, L1 = L2 = 1 m, g = 9.8 m/s²; 1000 trajectories whose four
initial values are drawn uniformly from [−90°, 90°] (converted to rad and rad/s) with a seeded numpy
generator; 30 points at dt = 0.1 s (0 … 2.9 s); the first 900 trajectories train, the last 100 test.
It is cached as ``.npz`` with its parameters and a content hash.

Larger sets (the production model's) take another ``seed``, so that they do not contain the standard
test trajectories, and may use ``solver="joint"`` (``physics.pendulum.simulate_joint``, each chunk
of ``GENERATION_CHUNK`` trajectories integrated as one system, to the same per-component tolerance).

The physics lives in ``physics.pendulum`` and the network's input encoding in ``physics.encoding``.
"""

import dataclasses
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from physics.encoding import network_inputs
from physics.pendulum import (
    ATOL,
    DT,
    INITIAL_RANGE_DEG,
    L1,
    L2,
    M1,
    M2,
    METHOD,
    RTOL,
    G,
    simulate,
    simulate_joint,
)
from training.data.errors import DataFormatError

CACHE_FORMAT_VERSION = 1


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
    solver: Literal["each", "joint"] = "each"

    def __post_init__(self):
        if self.solver not in ("each", "joint"):
            raise ValueError(f"solver must be 'each' or 'joint', got {self.solver!r}")

    def record(self) -> dict:
        """The spec as hashed and stored; ``solver`` (added later) only when it is not the default,
        so that the standard set keeps its cache file and content hash."""
        record = asdict(self)
        if record["solver"] == "each":
            del record["solver"]
        return record

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.record(), sort_keys=True).encode()).hexdigest()[:16]


GENERATION_CHUNK = 250                 # trajectories per worker task


def _simulate_chunk(args: tuple[np.ndarray, int, float, str]) -> np.ndarray:
    initial, steps, dt, solver = args
    return (simulate_joint if solver == "joint" else simulate)(initial, steps, dt)


def generate(spec: PendulumDataSpec, workers: int | None = None, progress: bool | None = None) -> np.ndarray:
    """The trajectories (trajectories, points, 4) of a spec, freshly integrated.

    Every trajectory is integrated on its own from its seeded initial state, so the result does not
    depend on ``workers`` (processes; default: all CPUs, 1 = in this process) or on the chunking.
    ``progress`` shows a tqdm bar (default: for more than one chunk)."""
    if (spec.m1, spec.m2, spec.l1, spec.l2, spec.g, spec.method, spec.rtol, spec.atol) != \
            (M1, M2, L1, L2, G, METHOD, RTOL, ATOL):
        raise ValueError("the physical constants and solver settings are fixed by this module; "
                         "only trajectories, points, dt, seed and train may vary")
    rng = np.random.default_rng(spec.seed)
    initial = np.deg2rad(rng.uniform(*spec.initial_range_deg, size=(spec.trajectories, 4)))
    chunks = [(initial[i:i + GENERATION_CHUNK], spec.points - 1, spec.dt, spec.solver)
              for i in range(0, len(initial), GENERATION_CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    show = len(chunks) > 1 if progress is None else progress
    bar = tqdm(total=spec.trajectories, desc="simulating", unit="traj", disable=not show)
    parts = []
    if workers <= 1:
        for chunk in chunks:
            parts.append(_simulate_chunk(chunk))
            bar.update(len(chunk[0]))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_simulate_chunk, chunks):
                parts.append(part)
                bar.update(len(part))
    bar.close()
    return np.concatenate(parts)


def content_hash(states: np.ndarray, spec: PendulumDataSpec) -> str:
    digest = hashlib.sha256(json.dumps(spec.record(), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(states, dtype=np.float64).tobytes())
    return digest.hexdigest()


def load_or_generate(cache_dir: Path, spec: PendulumDataSpec = PendulumDataSpec(),
                     verbose: bool = True, workers: int | None = None) -> tuple[np.ndarray, str]:
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
        if stored_spec != json.loads(json.dumps(spec.record())) or content_hash(states, spec) != stored_hash:
            raise DataFormatError(f"{path}: cached trajectories do not match their parameters or content "
                                  "hash; delete the file to regenerate")
        return states, stored_hash
    if verbose:
        print(f"generating {spec.trajectories} double-pendulum trajectories of {spec.points} points "
              f"(DOP853, rtol=atol=1e-10, solver {spec.solver!r}) into {path}", flush=True)
    states = generate(spec, workers, progress=None if verbose else False)
    digest = content_hash(states, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")    # DDP ranks may write at once
    np.savez(tmp, states=states, content_hash=np.array(digest), spec=np.array(json.dumps(spec.record())))
    tmp.replace(path)
    return states, digest


@dataclass
class PendulumTrajectories:
    """Trajectories (N, points, 4) float32, served as (network inputs, next-state targets) batches.

    With a normalisation (``with_normalisation``), a batch's initial state is (s₀ − input_mean) /
    input_std (the placeholder steps stay 1.0, as in the service) and its targets are
    (s − target_mean) / target_std; ``states`` always stay in rad and rad/s. ``encoding`` is the
    input sequence's form (``physics.encoding.network_inputs``; None: the paper's).
    """

    states: Tensor
    description: str | None = None          # the data set these came from (for the manifest)
    input_mean: Tensor | None = None
    input_std: Tensor | None = None
    target_mean: Tensor | None = None
    target_std: Tensor | None = None
    encoding: str | None = None

    def __post_init__(self):
        if self.states.dim() != 3 or self.states.shape[2] != 4 or self.states.shape[1] < 2:
            raise ValueError(f"states must have shape (N, points ≥ 2, 4), got {tuple(self.states.shape)}")
        for key in ("input_mean", "input_std", "target_mean", "target_std"):
            value = getattr(self, key)
            if value is not None and tuple(value.shape) != (4,):
                raise ValueError(f"{key} must have shape (4,), got {tuple(value.shape)}")
        for key in ("input_std", "target_std"):
            value = getattr(self, key)
            if value is not None and not bool((value > 0).all()):
                raise ValueError(f"{key} must be positive, got {value.tolist()}")

    def with_normalisation(self, input_mean: Tensor | None = None, input_std: Tensor | None = None,
                           target_mean: Tensor | None = None, target_std: Tensor | None = None
                           ) -> "PendulumTrajectories":
        return dataclasses.replace(self, input_mean=input_mean, input_std=input_std,
                                   target_mean=target_mean, target_std=target_std)

    def with_encoding(self, encoding: str | None) -> "PendulumTrajectories":
        return dataclasses.replace(self, encoding=encoding)

    def __len__(self) -> int:
        return self.states.shape[0]

    @property
    def sequence_length(self) -> int:
        return self.states.shape[1] - 1

    @property
    def channels(self) -> int:
        return 4

    def subset(self, indices: Tensor) -> "PendulumTrajectories":
        return dataclasses.replace(self, states=self.states[indices])

    def batch(self, indices: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(inputs (B, points − 1, 4), targets = states 1 … points − 1 (B, points − 1, 4))."""
        states = self.states[indices].to(device)
        initial, targets = states[:, 0], states[:, 1:]
        if self.input_mean is not None:
            initial = (initial - self.input_mean.to(initial)) / self.input_std.to(initial)
        if self.target_mean is not None:
            targets = (targets - self.target_mean.to(targets)) / self.target_std.to(targets)
        return network_inputs(initial, self.sequence_length, self.encoding), targets


def check_disjoint_from_standard_test(spec: PendulumDataSpec) -> None:
    """Refuse a set that trains on the standard test trajectories, on which every table is measured.

    The initial states are drawn row by row from one seeded stream, so a set with the standard seed
    holds the standard set's rows as its first rows, and trains on rows 900 … 999 once ``train`` > 900.
    """
    standard = PendulumDataSpec()
    if spec.seed == standard.seed and spec.train > standard.train:
        raise ValueError(f"a set with the standard seed {standard.seed} and {spec.train} training "
                         f"trajectories trains on the standard test trajectories (rows {standard.train}-"
                         f"{standard.trajectories - 1}); choose another data seed")


def load_pendulum(cache_dir: Path, spec: PendulumDataSpec = PendulumDataSpec()
                  ) -> tuple[PendulumTrajectories, PendulumTrajectories, str]:
    """(train, test, content hash): the first ``spec.train`` trajectories train, the rest test."""
    states, digest = load_or_generate(cache_dir, spec)
    tensor = torch.from_numpy(states.astype(np.float32))
    described = describe(spec)
    return (PendulumTrajectories(tensor[:spec.train], described),
            PendulumTrajectories(tensor[spec.train:], described), digest)


def describe(spec: PendulumDataSpec) -> str:
    """One line for a manifest: which simulated data a model saw."""
    solver = ", integrated jointly per chunk" if spec.solver == "joint" else ""
    return (f"{spec.trajectories} simulated trajectories (seed {spec.seed}; the first {spec.train} train), "
            f"{spec.points} points at dt {spec.dt:g} s ({(spec.points - 1) * spec.dt:g} s){solver}")
