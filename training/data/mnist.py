"""Pixel-by-pixel MNIST from the four IDX ``.gz`` files (no torchvision).

IDX layout (big-endian): a 4-byte magic number 0x00000803 = 2051 for images, 0x00000801 = 2049 for
labels; then one uint32 per dimension (images: count, rows, cols; labels: count); then the raw uint8
values in row-major order. An image of rows × cols pixels becomes a sequence of T = rows · cols steps
with one channel (784 × 1 for MNIST), normalised with the paper's mean 0.1307 and std 0.3081.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from artifact.specs import MNIST_CLASS_NAMES as CLASS_NAMES
from artifact.specs import MNIST_MEAN, MNIST_STD
from training.data.errors import DataFormatError
from training.data.sequences import ImageSequences, hash_files

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SUBDIR = "mnist"


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in a gzip-compressed IDX file whose magic number must be ``magic``."""
    kind = {IMAGES_MAGIC: "idx3 images", LABELS_MAGIC: "idx1 labels"}[magic]
    expected = f"a gzip-compressed IDX file ({kind}, magic {magic})"
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; expected {expected}")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: cannot decompress ({err}); expected {expected}") from err
    ndim = magic & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DataFormatError(f"{path}: only {len(raw)} bytes after decompression, shorter than the "
                              f"{header_bytes}-byte header of {expected}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataFormatError(f"{path}: magic number {found}, expected {expected}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - header_bytes != size:
        raise DataFormatError(f"{path}: header says {dims} = {size} values but the file holds "
                              f"{len(raw) - header_bytes}; truncated or corrupt {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)


def mnist_files(data_dir: Path, split: str) -> list[Path]:
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    return [Path(data_dir) / SUBDIR / name for name in FILES[split]]


def load_mnist(data_dir: Path, split: str) -> ImageSequences:
    """The ``split`` ('train' or 'test') of MNIST in ``data_dir/mnist`` as (N, rows·cols, 1) sequences."""
    images_path, labels_path = mnist_files(data_dir, split)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                              f"{labels.shape[0]} labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataFormatError(f"{labels_path}: label {labels.max()} outside 0..9")
    n, rows, cols = images.shape
    pixels = torch.from_numpy(images.reshape(n, rows * cols, 1).copy())
    return ImageSequences(pixels, torch.from_numpy(labels.astype(np.int64)), MNIST_MEAN, MNIST_STD)


def mnist_hash(data_dir: Path) -> str:
    """SHA-256 identifying the four MNIST files (their names and contents)."""
    return hash_files(mnist_files(data_dir, "train") + mnist_files(data_dir, "test"))
