"""Checks on the shipped checkpoints in ``checkpoints/`` (issue 5): integrity, architecture, accuracy."""

import math
from pathlib import Path

import pytest
import torch

from artifact.export import load_exported, read_manifest, sha256_of
from model import PAPER_PARAMETER_COUNTS, count_parameters, paper_model
from training.data.paths import resolve_data_dir

torch.set_num_threads(1)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
SHIPPED = ("pendulum", "mnist", "cifar10", "mnist-frnn")
MANIFESTS = sorted(CHECKPOINTS.glob("*.json"))


def test_the_default_models_are_shipped():
    names = {read_manifest(p).name for p in MANIFESTS}
    assert set(SHIPPED) <= names, f"missing shipped checkpoints: {set(SHIPPED) - names}"


@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=lambda p: p.stem)
def test_manifest_sha256_matches_its_file(manifest_path):
    manifest = read_manifest(manifest_path)
    artifact = manifest_path.parent / manifest.artifact.file
    assert sha256_of(artifact) == manifest.artifact.sha256
    assert artifact.stat().st_size == manifest.artifact.bytes


@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=lambda p: p.stem)
def test_parameter_count_matches_the_paper_configuration(manifest_path):
    module, manifest = load_exported(manifest_path)
    loaded = sum(p.numel() for p in module.parameters())
    assert loaded == manifest.parameters
    key = (manifest.task, manifest.architecture.variant)
    # our own tuning changes ε, γ, the init and the optimiser, never the architecture
    assert loaded == count_parameters(paper_model(*key))
    if key in PAPER_PARAMETER_COUNTS:
        assert loaded == PAPER_PARAMETER_COUNTS[key]


def _first_test_images(task: str, n: int):
    data_dir = resolve_data_dir(None)
    if task == "mnist":
        from training.data.mnist import load_mnist
        if not (data_dir / "mnist").is_dir():
            pytest.skip(f"real data absent: {data_dir / 'mnist'}")
        data = load_mnist(data_dir, "test")
    else:
        from training.data.cifar10 import load_cifar10
        if not (data_dir / "cifar10").is_dir():
            pytest.skip(f"real data absent: {data_dir / 'cifar10'}")
        data = load_cifar10(data_dir, "test")
    return data.batch(torch.arange(n))


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "cifar10", "mnist-frnn"])
def test_accuracy_on_the_first_500_test_images_matches_the_manifest(name):
    """The manifest's accuracy is over all 10000 test images; 500 of them give it within sampling
    error: |a₅₀₀ − a| ≤ 4·√(a(1 − a)/500) (+0.5 % for the non-random order of the first images)."""
    path = CHECKPOINTS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    module, manifest = load_exported(path)
    x, y = _first_test_images(manifest.task, 500)
    with torch.inference_mode():
        predicted = torch.cat([module(x[i:i + 100]).argmax(1) for i in range(0, 500, 100)])
    accuracy = (predicted == y).double().mean().item()
    expected = manifest.metrics["test_accuracy"]
    tolerance = 4 * math.sqrt(max(expected * (1 - expected), 1e-4) / 500) + 0.005
    assert abs(accuracy - expected) <= tolerance, (accuracy, expected, tolerance)
