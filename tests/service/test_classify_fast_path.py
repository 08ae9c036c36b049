"""/classify's batch-1 path (the Euler loop in C) gives the shipped model's own probabilities."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.export import load_exported
from service.tasks.classifier import FAST_PATH_MAX_ROWS, ClassifierAPI, ClassifyJob

MNIST = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist.json"
pytestmark = [
    pytest.mark.skipif(not MNIST.is_file(), reason="shipped MNIST checkpoint absent"),
    pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"),
]


def test_small_batches_take_the_fast_path_and_agree_with_the_module():
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is not None, api.fast_path_reason
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (FAST_PATH_MAX_ROWS + 1, 784))
    x = api.decode(list(images), 255, [("images", i) for i in range(len(images))])
    with torch.inference_mode():
        expected = torch.softmax(module(torch.from_numpy(x)), dim=-1).numpy()
        one = api.run_batch([ClassifyJob(x[:1])])[0]                          # fast path (1 row)
        pair = api.run_batch([ClassifyJob(x[:1]), ClassifyJob(x[1:2])])      # fast path (2 rows)
        whole = api.run_batch([ClassifyJob(x)])[0]                           # TorchScript (3 rows)
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)
    np.testing.assert_allclose(np.concatenate(pair), expected[:2], atol=1e-5)
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    assert one.argmax() == expected[0].argmax()


def test_fast_path_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("AFRNN_FAST_RECURRENCE", "0")
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is None and "AFRNN_FAST_RECURRENCE=0" in api.fast_path_reason
