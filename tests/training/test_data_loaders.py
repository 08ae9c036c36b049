"""MNIST IDX and CIFAR-10 pickle loaders: parsing, normalisation, and clear errors on bad files."""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import cifar10, mnist
from training.data.errors import DataFormatError
from training.data.paths import DATA_DIR_ENV, resolve_data_dir

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_mnist_fixture_parses_to_pixel_sequences(tmp_path, write_idx):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)        # 5 images of 3 rows × 4 cols
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", images, 2051)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", labels, 2049)
    data = mnist.load_mnist(tmp_path, "train")
    assert data.pixels.shape == (5, 12, 1) and data.pixels.dtype == torch.uint8
    # row-major: step 4 is row 1, column 0
    assert data.pixels[2, 4, 0] == images[2, 1, 0]
    assert data.labels.tolist() == [3, 1, 4, 1, 5]
    x, y = data.batch(torch.tensor([0, 2]))
    expected = (images[[0, 2]].reshape(2, 12, 1) / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert x.dtype == torch.float32 and y.tolist() == [3, 4]


def test_mnist_truncated_file_names_file_and_format(mnist_dir):
    path = mnist_dir / "mnist" / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz.*truncated.*IDX"):
        mnist.load_mnist(mnist_dir, "train")


def test_mnist_truncated_gzip_stream_is_reported(mnist_dir):
    path = mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte\.gz: cannot decompress.*gzip"):
        mnist.load_mnist(mnist_dir, "test")


def test_mnist_images_file_with_labels_magic_is_rejected(mnist_dir, write_idx):
    write_idx(mnist_dir / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((96, 4), np.uint8), 2049)
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz: magic number 2049, expected "
                                              r"a gzip-compressed IDX file \(idx3 images, magic 2051\)"):
        mnist.load_mnist(mnist_dir, "train")


def test_mnist_missing_file_is_named(mnist_dir):
    (mnist_dir / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte\.gz: file not found"):
        mnist.load_mnist(mnist_dir, "test")


def test_mnist_label_count_mismatch_is_reported(mnist_dir, write_idx):
    write_idx(mnist_dir / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(95, np.uint8), 2049)
    with pytest.raises(DataFormatError, match="96 images but .* 95 labels"):
        mnist.load_mnist(mnist_dir, "train")


def test_cifar_fixture_gives_rgb_per_pixel_in_row_major_order(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    side = 3
    data = np.arange(2 * 3 * side * side, dtype=np.uint8).reshape(2, 3 * side * side)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": [7, 2]}, f, protocol=2)
    ds = cifar10.load_cifar10(tmp_path, "test")
    assert ds.pixels.shape == (2, side * side, 3)
    # pixel p of image i is (R, G, B) = (data[i, p], data[i, S² + p], data[i, 2 S² + p])
    for i in range(2):
        for p in range(side * side):
            assert ds.pixels[i, p].tolist() == [data[i, p], data[i, 9 + p], data[i, 18 + p]]
    x, _ = ds.batch(torch.tensor([1]))
    mean, std = np.array(cifar10.CIFAR10_MEAN), np.array(cifar10.CIFAR10_STD)
    np.testing.assert_allclose(x[0].numpy(), (ds.pixels[1].numpy() / 255.0 - mean) / std, rtol=1e-5)


def test_cifar_train_split_joins_five_batches_in_order(cifar_dir):
    ds = cifar10.load_cifar10(cifar_dir, "train")
    assert len(ds) == 5 * 16
    with open(cifar_dir / "cifar10" / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        second = pickle.load(f, encoding="bytes")
    assert ds.labels[16:32].tolist() == second[b"labels"]


def test_cifar_str_keys_and_protocol_5_are_accepted(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((1, 12), np.uint8), "labels": [9]}, f, protocol=5)
    assert cifar10.load_cifar10(tmp_path, "test").labels.tolist() == [9]


def test_cifar_truncated_pickle_is_reported(cifar_dir):
    path = cifar_dir / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataFormatError, match=r"data_batch_3: cannot unpickle.*cifar-10-batches-py pickle"):
        cifar10.load_cifar10(cifar_dir, "train")


def test_cifar_wrong_row_width_is_reported(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(DataFormatError, match="test_batch: rows of 10 values are not 3 square colour planes"):
        cifar10.load_cifar10(tmp_path, "test")


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataFormatError, match="is not allowed in a data batch"):
        cifar10.load_cifar10(tmp_path, "test")
    assert not marker.exists()


def test_cifar_missing_file_is_named(cifar_dir):
    (cifar_dir / "cifar10" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataFormatError, match=r"test_batch: file not found"):
        cifar10.load_cifar10(cifar_dir, "test")


def test_data_dir_resolution_prefers_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_data_dir(other) == other
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data_dir(tmp_path / "missing")


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason=f"real data absent: {REAL_DATA / 'mnist'}")
def test_real_mnist_matches_published_facts():
    train = mnist.load_mnist(REAL_DATA, "train")
    test = mnist.load_mnist(REAL_DATA, "test")
    assert train.pixels.shape == (60000, 784, 1) and len(test) == 10000
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(float(train.pixels.float().mean()) / 255 - mnist.MNIST_MEAN[0]) < 5e-4


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL_DATA / "cifar10").is_dir(), reason=f"real data absent: {REAL_DATA / 'cifar10'}")
def test_real_cifar10_matches_published_facts():
    test = cifar10.load_cifar10(REAL_DATA, "test")
    assert test.pixels.shape == (10000, 1024, 3)
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    # published: test_batch row 0 begins R = 158 159 165 (the first three red values)
    assert test.pixels[0, :3, 0].tolist() == [158, 159, 165]
