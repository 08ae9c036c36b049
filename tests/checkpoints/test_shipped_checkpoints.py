"""Checks on the shipped checkpoints in ``checkpoints/`` (issue 5): integrity, architecture, accuracy.

The accuracy checks run everywhere, on the sample of real test images shipped in ``artifact/samples``;
the check that this sample is the data set's (``realdata``) needs the full data dir and skips without it.
"""

from pathlib import Path

import pytest
import torch
from scipy.stats import binom

from artifact.export import load_exported, read_manifest, sha256_of
from artifact.samples import SAMPLE_TASKS, load_sample
from model import PAPER_PARAMETER_COUNTS, count_parameters, paper_model
from training.data.cifar10 import load_cifar10
from training.data.mnist import load_mnist
from training.data.paths import DATA_DIR_ENV, resolve_data_dir

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


def _classifiers() -> list[Path]:
    return [p for p in MANIFESTS if read_manifest(p).task in SAMPLE_TASKS]


@pytest.mark.parametrize("manifest_path", _classifiers(), ids=lambda p: p.stem)
def test_accuracy_on_the_shipped_sample_matches_the_manifest(manifest_path):
    """The manifest's accuracy p is over the whole test split (10000 images); the shipped sample holds
    its first n = 300 (``artifact/samples``). The number of correct answers k must lie in the central
    99.99 % interval of Binomial(n, p), i.e. a random sample of n test images would fall outside it
    with probability below 1e-4 (about ±4 standard deviations; 279 to 300 correct at p = 0.9727,
    73 to 136 at p = 0.3461). The sample is fixed, so for a given checkpoint the outcome is too; it
    fails when the artifact does not earn its manifest's accuracy (another model's weights, a wrong
    normalisation in the manifest, a sample with shuffled labels)."""
    module, manifest = load_exported(manifest_path)
    sample = load_sample(manifest.task)
    mean = torch.tensor(manifest.input.normalization_mean)
    std = torch.tensor(manifest.input.normalization_std)
    x = (torch.from_numpy(sample.pixels).float() / 255 - mean) / std      # the manifest's input rule
    with torch.inference_mode():
        predicted = torch.cat([module(x[i:i + 100]).argmax(1) for i in range(0, len(x), 100)])
    correct = int((predicted.numpy() == sample.labels).sum())
    n, p = len(sample.labels), manifest.metrics["test_accuracy"]
    low, high = binom.interval(1 - 1e-4, n, p)
    assert low <= correct <= high, (f"{manifest.name}: {correct}/{n} correct on the shipped sample, "
                                    f"outside [{low:.0f}, {high:.0f}] for the manifest's accuracy {p}")


def _real_test_split(task: str):
    """The full test split of ``task`` from the data dir, or a skip naming what is absent."""
    try:
        data_dir = resolve_data_dir(None)
    except FileNotFoundError as err:
        pytest.skip(f"real data absent ({err})")
    loader, folder = {"mnist": (load_mnist, "mnist"), "cifar10": (load_cifar10, "cifar10")}[task]
    if not (data_dir / folder).is_dir():
        pytest.skip(f"real data absent: {data_dir / folder} does not exist (set {DATA_DIR_ENV} to a "
                    "directory holding mnist/ and cifar10/)")
    return loader(data_dir, "test")


@pytest.mark.realdata
@pytest.mark.parametrize("task", SAMPLE_TASKS)
def test_the_shipped_sample_is_the_data_sets_test_images(task):
    """Each sample image, label and index equals the data set's test image at that index."""
    sample = load_sample(task)
    test = _real_test_split(task)
    indices = torch.from_numpy(sample.indices)
    assert sample.indices.tolist() == list(range(len(sample.indices)))     # the first n, as documented
    assert torch.equal(torch.from_numpy(sample.pixels), test.pixels[indices])
    assert torch.equal(torch.from_numpy(sample.labels), test.labels[indices])
