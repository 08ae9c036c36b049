"""Smoke test of the shipped checkpoints: /classify labels real MNIST test images (the sample shipped in
``artifact/samples``) as the artifact itself does, and about as accurately as its manifest claims.
Runs everywhere; skipped, with the reason, only when ``checkpoints/mnist.json`` is absent."""

from pathlib import Path

import pytest
import torch
from scipy.stats import binom

from artifact.export import load_exported
from artifact.samples import load_sample

REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
IMAGES = 60                     # within the default classify_max_batch (64): one request


@pytest.fixture(scope="module")
def mnist_test_images():
    if not (REPO_CHECKPOINTS / "mnist.json").is_file():
        pytest.skip(f"no shipped MNIST checkpoint: {REPO_CHECKPOINTS / 'mnist.json'} is absent")
    sample = load_sample("mnist")
    return sample.pixels[:IMAGES], sample.labels[:IMAGES]


def test_classify_labels_real_test_images(mnist_test_images, start_service):
    pixels, labels = mnist_test_images
    service = start_service(REPO_CHECKPOINTS)
    images = pixels[:, :, 0].tolist()                                # (60, 784) uint8 → 0–255 ints
    with service.client(api_key=None) as client:
        r = client.post("/classify", json={"model": "mnist", "images": images, "scale": 255})
    assert r.status_code == 200, r.text
    served = [p["label"] for p in r.json()["predictions"]]

    module, manifest = load_exported(REPO_CHECKPOINTS / "mnist.json")
    mean = torch.tensor(manifest.input.normalization_mean)
    std = torch.tensor(manifest.input.normalization_std)
    x = (torch.from_numpy(pixels).float() / 255 - mean) / std
    with torch.no_grad():
        direct = module(x).argmax(dim=1).tolist()
    assert served == direct                                        # the service adds nothing of its own
    correct = sum(s == int(y) for s, y in zip(served, labels, strict=True))
    # the number correct lies in the central 99.99 % interval of Binomial(60, manifest accuracy)
    low, _ = binom.interval(1 - 1e-4, IMAGES, manifest.metrics["test_accuracy"])
    assert correct >= low, (correct, low, served, labels.tolist())
