"""Smoke test of the shipped checkpoints: /classify labels real MNIST test images as the artifact
itself does, and about as accurately as its manifest claims. Skipped, with the reason, when
``checkpoints/mnist.json`` or the data dir is absent."""

import pytest
import torch

from artifact.export import load_exported
from training.data.mnist import load_mnist
from training.data.paths import resolve_data_dir

REPO_CHECKPOINTS = __import__("pathlib").Path(__file__).resolve().parents[2] / "checkpoints"
IMAGES = 20

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def mnist_test_images():
    if not (REPO_CHECKPOINTS / "mnist.json").is_file():
        pytest.skip(f"no shipped MNIST checkpoint: {REPO_CHECKPOINTS / 'mnist.json'} is absent")
    try:
        data_dir = resolve_data_dir()
    except FileNotFoundError as err:
        pytest.skip(f"no MNIST data dir: {err}")
    return load_mnist(data_dir, "test").subset(torch.arange(IMAGES))


def test_classify_labels_real_test_images(mnist_test_images, start_service):
    service = start_service(REPO_CHECKPOINTS)
    images = mnist_test_images.pixels[:, :, 0].tolist()             # (20, 784) uint8 → 0–255 ints
    with service.client(api_key=None) as client:
        r = client.post("/classify", json={"model": "mnist", "images": images, "scale": 255})
    assert r.status_code == 200, r.text
    served = [p["label"] for p in r.json()["predictions"]]

    module, manifest = load_exported(REPO_CHECKPOINTS / "mnist.json")
    x, labels = mnist_test_images.batch(torch.arange(IMAGES))
    with torch.no_grad():
        direct = module(x).argmax(dim=1).tolist()
    assert served == direct                                        # the service adds nothing of its own
    correct = sum(s == int(y) for s, y in zip(served, labels, strict=True))
    # the shipped model scores ≥ 90 % on the test split (its manifest says how much); on these 20
    # fixed images at most 3 mistakes are allowed
    assert manifest.metrics["test_accuracy"] >= 0.9
    assert correct >= IMAGES - 3, (served, labels.tolist())
