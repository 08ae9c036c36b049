"""Data sets: pixel MNIST, pixel CIFAR-10 (read from files, no torchvision) and the double pendulum."""

from training.data.errors import DataFormatError
from training.data.paths import resolve_cache_dir, resolve_data_dir
from training.data.sequences import ImageSequences

__all__ = ["DataFormatError", "ImageSequences", "resolve_cache_dir", "resolve_data_dir"]
