"""In-memory sequence data sets with one batching interface: ``len(ds)`` and ``ds.batch(indices, device)``.

Images stay uint8 in memory (MNIST 47 MB, CIFAR-10 150 MB) and are scaled and normalised per batch:

    x = (pixel / 255 − mean_c) / std_c          for channel c,

so a batch of B images of T pixels with C channels becomes a float32 tensor (B, T, C).
"""

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ImageSequences:
    """Images as pixel sequences, with labels.

    Attributes:
        pixels: uint8 tensor (N, T, C): T pixels in row-major order, C channels per pixel.
        labels: int64 tensor (N,), class indices.
        mean, std: per-channel normalisation of the [0, 1]-scaled pixel values.
    """

    pixels: Tensor
    labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        if self.pixels.dtype != torch.uint8 or self.pixels.dim() != 3:
            raise ValueError(f"pixels must be a uint8 tensor (N, T, C), got {self.pixels.dtype} "
                             f"{tuple(self.pixels.shape)}")
        if self.labels.shape != (self.pixels.shape[0],):
            raise ValueError(f"labels must have shape ({self.pixels.shape[0]},), "
                             f"got {tuple(self.labels.shape)}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values, got {self.mean} and {self.std}")

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def sequence_length(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    def subset(self, indices: Tensor) -> "ImageSequences":
        return ImageSequences(self.pixels[indices], self.labels[indices], self.mean, self.std)

    def normalise(self, pixels: Tensor) -> Tensor:
        """uint8 pixels (…, C) → float32 (pixel/255 − mean) / std, on the pixels' device."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=pixels.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=pixels.device)
        return (pixels.float().div_(255.0) - mean) / std

    def batch(self, indices: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """(inputs float32 (B, T, C), labels int64 (B,)) for the given sample indices."""
        pixels = self.pixels[indices].to(device, non_blocking=True)
        return self.normalise(pixels), self.labels[indices].to(device, non_blocking=True)


def hash_files(paths) -> str:
    """SHA-256 over the names and SHA-256 digests of some files, in the given order."""
    outer = hashlib.sha256()
    for path in paths:
        inner = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                inner.update(block)
        outer.update(f"{path.name} {inner.hexdigest()}\n".encode())
    return outer.hexdigest()
