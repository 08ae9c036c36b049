"""The three tasks: their data, objective, and the input/output specs written into the manifest."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from artifact import specs
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
    output_spec: Callable[[Any], dict]      # data set → Manifest.output fields


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
    for key in ("points", "solver"):
        if getattr(cfg, key) is not None:
            spec = dataclasses.replace(spec, **{key: getattr(cfg, key)})
    if cfg.data_seed is not None:
        spec = dataclasses.replace(spec, seed=cfg.data_seed)
    pendulum.check_disjoint_from_standard_test(spec)
    train, test, digest = pendulum.load_pendulum(resolve_cache_dir(cfg.cache_dir), spec)
    return TaskData(train, test, digest)


def _image_input(layout: str):
    def spec(data) -> dict:
        return specs.image_input_spec(data.sequence_length, data.channels, data.mean, data.std, layout)
    return spec


def _classes(names):
    return lambda _data: specs.classes_output_spec(names)


def _pendulum_input(data) -> dict:
    spec = specs.pendulum_input_spec(data.sequence_length, data.encoding)
    if data.input_mean is not None:             # --standardize (training.pendulum_recipe)
        spec.update(normalization_mean=data.input_mean.tolist(), normalization_std=data.input_std.tolist())
    return spec


def _pendulum_output(data) -> dict:
    spec = specs.pendulum_output_spec()
    spec.update(trained_horizon_s=round(data.sequence_length * spec["dt"], 9), training_data=data.description)
    if data.target_mean is not None:            # the network outputs (s − offset) / scale
        spec.update(offset=data.target_mean.tolist(), scale=data.target_std.tolist())
    return spec


TASKS: dict[str, Task] = {
    "mnist": Task("mnist", ClassificationObjective(), _load_mnist,
                  _image_input(specs.MNIST_LAYOUT), _classes(specs.MNIST_CLASS_NAMES)),
    "cifar10": Task("cifar10", ClassificationObjective(), _load_cifar10,
                    _image_input(specs.CIFAR10_LAYOUT), _classes(specs.CIFAR10_CLASS_NAMES)),
    "pendulum": Task("pendulum", TrajectoryObjective(), _load_pendulum, _pendulum_input,
                     _pendulum_output),
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
