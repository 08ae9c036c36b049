"""Shared fixtures for the training tests: tiny MNIST IDX and CIFAR-10 pickle files written on the spot.

The fixture images are small (MNIST 4×4 → 16 steps, CIFAR-10 2×2 → 4 steps of 3 channels) so a
whole train–evaluate–export run takes seconds. Their label is a simple function of the pixels (the
image is bright or dark) so that a network can learn it.
"""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """A gzip-compressed IDX file: magic (big-endian uint32), one uint32 per dimension, uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def brightness_images(rng: np.random.Generator, n: int,
                      shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images whose label (0..9) is their brightness decile band: learnable from the pixel sum."""
    labels = rng.integers(0, 10, size=n)
    base = (labels * 25 + 10).reshape((n,) + (1,) * len(shape))
    noise = rng.integers(-8, 9, size=(n,) + shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_mnist(root: Path, n_train: int = 96, n_test: int = 40, side: int = 4, seed: int = 0) -> Path:
    """``root/mnist/*-ubyte.gz`` with side×side images; returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = brightness_images(rng, n, (side, side))
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    return root


def write_cifar10(root: Path, per_batch: int = 16, n_test: int = 24, side: int = 2, seed: int = 0) -> Path:
    """``root/cifar10/cifar-10-batches-py/`` with five train batches and a test batch; returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        images, labels = brightness_images(rng, n, (3, side * side))     # planes R, G, B
        batch = {b"data": images.reshape(n, 3 * side * side), b"labels": [int(v) for v in labels],
                 b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return root


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    return write_mnist(tmp_path / "data")


@pytest.fixture
def cifar_dir(tmp_path) -> Path:
    return write_cifar10(tmp_path / "data")


@pytest.fixture
def write_idx():
    """The IDX writer, for tests that build their own files."""
    return _write_idx


@pytest.fixture
def make_mnist():
    return write_mnist


@pytest.fixture
def make_cifar10():
    return write_cifar10
