"""Pixel-by-pixel CIFAR-10 from the ``cifar-10-batches-py`` pickles (no torchvision).

Each batch file is a pickled dict with ``data``, a uint8 array (n, 3·S²) whose rows hold the S² red,
then green, then blue values, each plane row-major (S = 32), and ``labels``, a list of ints 0–9. The
training split is ``data_batch_1`` … ``data_batch_5`` in order, the test split ``test_batch``.

An image becomes a sequence of T = S² steps (1024 for CIFAR-10) with C = 3 channels (the RGB values
of one pixel per step, pixels in row-major order), normalised per channel with the training-set
statistics mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).

The pickles are read with an unpickler that accepts only the numpy classes an array needs, so a
tampered file cannot run code.
"""

import pickle
from pathlib import Path

import numpy as np
import torch

from artifact.specs import CIFAR10_CLASS_NAMES as CLASS_NAMES
from artifact.specs import CIFAR10_MEAN, CIFAR10_STD
from training.data.errors import DataFormatError
from training.data.sequences import ImageSequences, hash_files

SUBDIR = Path("cifar10") / "cifar-10-batches-py"
FILES = {
    "train": tuple(f"data_batch_{k}" for k in range(1, 6)),
    "test": ("test_batch",),
}
EXPECTED = "a cifar-10-batches-py pickle: a dict with 'data' (uint8, n × 3·S²) and 'labels' (n ints)"

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),   # pickle protocol 5
    ("_codecs", "encode"),                                                          # bytes in protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data batch")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 (n, S², 3), labels int64 (n,)) from one batch file."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; expected {EXPECTED}")
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataFormatError(f"{path}: cannot unpickle ({type(err).__name__}: {err}); truncated or "
                              f"not {EXPECTED}") from err
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path}: holds a {type(batch).__name__}, expected {EXPECTED}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataFormatError(f"{path}: keys {sorted(batch)} lack 'data' or 'labels'; expected {EXPECTED}")
    data = batch["data"]
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataFormatError(f"{path}: 'data' is not a 2-D uint8 array; expected {EXPECTED}")
    n, width = data.shape
    side = int(round((width / 3) ** 0.5))
    if 3 * side * side != width:
        raise DataFormatError(f"{path}: rows of {width} values are not 3 square colour planes; "
                              f"expected {EXPECTED}")
    if labels.shape != (n,):
        raise DataFormatError(f"{path}: {n} images but {labels.size} labels")
    if n and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DataFormatError(f"{path}: labels outside 0..9")
    pixels = data.reshape(n, 3, side * side).transpose(0, 2, 1)     # (n, S², RGB)
    return np.ascontiguousarray(pixels), labels


def cifar10_files(data_dir: Path, split: str) -> list[Path]:
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    return [Path(data_dir) / SUBDIR / name for name in FILES[split]]


def load_cifar10(data_dir: Path, split: str) -> ImageSequences:
    """The ``split`` ('train' or 'test') of CIFAR-10 in ``data_dir/cifar10`` as (N, S², 3) sequences."""
    parts = [read_batch(path) for path in cifar10_files(data_dir, split)]
    lengths = {p.shape[1] for p, _ in parts}
    if len(lengths) > 1:
        raise DataFormatError(f"{data_dir / SUBDIR}: batches of different image sizes {sorted(lengths)}")
    pixels = torch.from_numpy(np.concatenate([p for p, _ in parts]))
    labels = torch.from_numpy(np.concatenate([lab for _, lab in parts]))
    return ImageSequences(pixels, labels, CIFAR10_MEAN, CIFAR10_STD)


def cifar10_hash(data_dir: Path) -> str:
    """SHA-256 identifying the six batch files (their names and contents)."""
    return hash_files(cifar10_files(data_dir, "train") + cifar10_files(data_dir, "test"))
