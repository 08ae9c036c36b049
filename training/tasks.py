"""The three tasks: their data, objective, and the input/output specs written into the manifest."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.config import ConfigError, TrainConfig
from training.data import cifar10, mnist, pendulum
from training.data.paths import resolve_cache_dir, resolve_data_dir
from training.objectives import ClassificationObjective, TrajectoryObjective


@dataclass
class TaskData:
    train: Any              # ImageSequences | PendulumTrajectories (the whole train split)
    test: Any
    dataset_hash: str


@dataclass(frozen=True)
class Task:
    name: str
    objective: Any
    load: Callable[[TrainConfig], TaskData]
    input_spec: Callable[[Any], dict]       # data set → Manifest.input fields
    output_spec: Callable[[], dict]


def _load_mnist(cfg: TrainConfig) -> TaskData:
    root = resolve_data_dir(cfg.data_dir)
    return TaskData(mnist.load_mnist(root, "train"), mnist.load_mnist(root, "test"), mnist.mnist_hash(root))


def _load_cifar10(cfg: TrainConfig) -> TaskData:
    root = resolve_data_dir(cfg.data_dir)
    return TaskData(cifar10.load_cifar10(root, "train"), cifar10.load_cifar10(root, "test"),
                    cifar10.cifar10_hash(root))


def _load_pendulum(cfg: TrainConfig) -> TaskData:
    spec = pendulum.PendulumDataSpec()
    if cfg.trajectories is not None:
        spec = pendulum.PendulumDataSpec(trajectories=cfg.trajectories, train=round(0.9 * cfg.trajectories))
    train, test, digest = pendulum.load_pendulum(resolve_cache_dir(cfg.cache_dir), spec)
    return TaskData(train, test, digest)


def _image_input(layout: str):
    def spec(data) -> dict:
        return dict(sequence_length=data.sequence_length, channels=data.channels, layout=layout,
                    normalization_mean=list(data.mean), normalization_std=list(data.std),
                    value_range=(0.0, 1.0), units="intensity")
    return spec


def _classes(names):
    return lambda: dict(kind="classes", class_names=list(names))


def _pendulum_input(data) -> dict:
    low, high = pendulum.INITIAL_RANGE
    return dict(sequence_length=data.sequence_length, channels=4,
                layout=(f"step 0: the initial state [theta1, theta2, omega1, omega2] (rad, rad/s); steps "
                        f"1..{data.sequence_length - 1}: the constant {pendulum.PLACEHOLDER} in all four "
                        f"inputs; output step t predicts the state at time (t + 1)·dt"),
                normalization_mean=[0.0] * 4, normalization_std=[1.0] * 4,
                value_range=(low, high), units="radians",
                initial_state_names=list(pendulum.STATE_NAMES))


def _pendulum_output() -> dict:
    return dict(kind="states", state_names=list(pendulum.STATE_NAMES), units=list(pendulum.STATE_UNITS),
                dt=pendulum.DT)


TASKS: dict[str, Task] = {
    "mnist": Task("mnist", ClassificationObjective(), _load_mnist,
                  _image_input("row-major pixels, 1 grey value per step (28x28 -> 784 x 1); scale "
                               "uint8 by 1/255, then (x - mean) / std"),
                  _classes(mnist.CLASS_NAMES)),
    "cifar10": Task("cifar10", ClassificationObjective(), _load_cifar10,
                    _image_input("row-major pixels, RGB values of one pixel per step (32x32 -> 1024 x 3); "
                                 "scale uint8 by 1/255, then (x - mean_c) / std_c per channel"),
                    _classes(cifar10.CLASS_NAMES)),
    "pendulum": Task("pendulum", TrajectoryObjective(), _load_pendulum, _pendulum_input, _pendulum_output),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name]


def split_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of a train split: a seeded random hold-out of ``val_size``."""
    if val_size >= n:
        raise ConfigError(f"--val-size must be smaller than the {n} training samples, got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])
