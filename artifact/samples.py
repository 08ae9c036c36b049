"""A shipped sample of real test images: the first few hundred MNIST and CIFAR-10 test images.

The files live in ``artifact/samples/`` (package data, so an installed package and the Docker image
have them); ``samples/README.md`` names their source and indices, and ``python -m
training.make_samples`` rebuilds them from the full data sets. They let a clone with no data directory
check a shipped checkpoint's accuracy, and give the demo page real images.

``pixels`` are raw uint8 values in the pixel-sequence layout of the manifest's ``input.layout``
(N, T, C): T pixels in row-major order, C channels per pixel. A network reads
``(pixels / 255 − mean_c) / std_c`` with the manifest's ``normalization_mean`` / ``normalization_std``.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_TASKS = ("mnist", "cifar10")     # the image tasks (artifact.manifest.Task); the pendulum has none


class Sample(NamedTuple):
    pixels: np.ndarray      # uint8 (N, T, C)
    labels: np.ndarray      # int64 (N,), class indices
    indices: np.ndarray     # int64 (N,), positions in the test split
    source: str             # the data set and split the images come from


def sample_path(task: str) -> Path:
    if task not in SAMPLE_TASKS:
        raise ValueError(f"task must be one of {SAMPLE_TASKS} (the image tasks), got {task!r}")
    return SAMPLE_DIR / f"{task}-test-sample.npz"


def load_sample(task: str) -> Sample:
    """The shipped test-image sample of ``task`` ('mnist' or 'cifar10'): (pixels, labels, indices, source)."""
    path = sample_path(task)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shipped {task} sample is missing; rebuild it with "
                                "`python -m training.make_samples`")
    with np.load(path, allow_pickle=False) as data:
        sample = Sample(data["pixels"], data["labels"], data["indices"], str(data["source"]))
    if sample.pixels.dtype != np.uint8 or sample.pixels.ndim != 3:
        raise ValueError(f"{path}: pixels must be uint8 (N, T, C), got {sample.pixels.dtype} "
                         f"{sample.pixels.shape}")
    if not len(sample.pixels) == len(sample.labels) == len(sample.indices):
        raise ValueError(f"{path}: {len(sample.pixels)} images, {len(sample.labels)} labels and "
                         f"{len(sample.indices)} indices differ in number")
    return sample
