"""``python -m training.make_samples``: write the shipped sample of real test images, ``artifact/samples/``.

The sample is the first ``--count`` images (default 300) of the MNIST and CIFAR-10 *test* splits, in
the pixel-sequence layout the networks read (``ImageSequences.pixels``: uint8 (N, T, C), T pixels in
row-major order, C channels per pixel), with their labels and their indices in the test split. It lets
a fresh clone with no data directory check each shipped checkpoint's accuracy, and gives the service's
demo page real images to show (``artifact.samples.load_sample``).

    python -m training.make_samples          # data: --data-dir, $AFRNN_DATA_DIR, else ../shared/data
    python -m training.make_samples --count 300 --out-dir artifact/samples

Each task's file is ``<task>-test-sample.npz`` (``numpy.savez_compressed``) with the arrays ``pixels``,
``labels``, ``indices`` and the strings ``source`` and ``split``. The README.md beside them names the
source files and the indices; rerunning the command rewrites both, byte for byte the same.
"""

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from artifact.samples import SAMPLE_DIR, SAMPLE_TASKS, sample_path
from training.data import cifar10, mnist
from training.data.paths import resolve_data_dir

SOURCES = {
    "mnist": ("MNIST test split, the official `t10k-images-idx3-ubyte.gz` / `t10k-labels-idx1-ubyte.gz` "
              "(byte-identical to the published files; Y. LeCun, C. Cortes, C. J. C. Burges)"),
    "cifar10": ("CIFAR-10 test split, `cifar-10-batches-py/test_batch` (the original order; A. Krizhevsky, "
                "\"Learning Multiple Layers of Features from Tiny Images\", 2009)"),
}
LOADERS = {"mnist": mnist.load_mnist, "cifar10": cifar10.load_cifar10}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez_compressed`` with fixed zip time stamps, so that a rebuild is byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def make_sample(task: str, data_dir: Path, count: int, out_dir: Path) -> Path:
    """Write the first ``count`` test images of ``task`` to ``out_dir``; returns the file."""
    test = LOADERS[task](data_dir, "test")
    if count > len(test):
        raise ValueError(f"--count {count} exceeds the {len(test)} {task} test images")
    indices = np.arange(count, dtype=np.int64)
    path = out_dir / sample_path(task).name
    _write_npz(path, {"pixels": test.pixels[:count].numpy(), "labels": test.labels[:count].numpy(),
                      "indices": indices, "source": np.array(SOURCES[task]), "split": np.array("test")})
    return path


def readme_text(count: int, files: dict[str, Path]) -> str:
    lines = [
        "# A sample of real test images",
        "",
        f"The first {count} images (indices 0 to {count - 1}) of the MNIST and CIFAR-10 test splits, so",
        "that a clone with no data directory can check the shipped checkpoints' accuracy",
        "(`tests/checkpoints/test_shipped_checkpoints.py`) and the service's demo page has real images.",
        "Read them with `artifact.samples.load_sample(task)`; rebuild them with",
        "`python -m training.make_samples` (byte-identical output from the same data).",
        "",
        "| file | source | images | bytes |",
        "| --- | --- | --- | --- |",
    ]
    for task, path in files.items():
        lines.append(f"| `{path.name}` | {SOURCES[task]} | indices 0..{count - 1} | {path.stat().st_size} |")
    lines += [
        "",
        "Each `.npz` holds:",
        "",
        "- `pixels`: uint8 (N, T, C), the pixel sequence the networks read: T pixels in row-major order,",
        "  C channels per pixel (MNIST 784 x 1 grey values; CIFAR-10 1024 x 3 RGB values);",
        "- `labels`: int64 (N,), the class index (MNIST the digit; CIFAR-10 airplane, automobile, bird, cat,",
        "  deer, dog, frog, horse, ship, truck);",
        "- `indices`: int64 (N,), each image's position in its test split;",
        "- `source`, `split`: the strings above.",
        "",
        "Normalise as the manifest's `input` says (scale by 1/255, then (x - mean) / std per channel).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.make_samples",
                                     description=__doc__.split("\n\n", 1)[0].strip("`"))
    parser.add_argument("--data-dir", default=None, help="holds mnist/ and cifar10/ (default: "
                                                         "$AFRNN_DATA_DIR, else ../shared/data)")
    parser.add_argument("--count", type=int, default=300, help="first N test images per task (300)")
    parser.add_argument("--out-dir", type=Path, default=SAMPLE_DIR, help="default: artifact/samples")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be ≥ 1, got {args.count}")
    data_dir = resolve_data_dir(args.data_dir)
    files = {task: make_sample(task, data_dir, args.count, args.out_dir) for task in SAMPLE_TASKS}
    (args.out_dir / "README.md").write_text(readme_text(args.count, files))
    for path in files.values():
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
