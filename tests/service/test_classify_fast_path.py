"""/classify's C Euler loop gives the shipped model's own probabilities, at every batch size (it beats
the TorchScript forward at 1-64 rows: docs/performance.md), and not for per-step sequences."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.export import load_exported
from service.tasks.classifier import ClassifierAPI, ClassifyJob

MNIST = Path(__file__).resolve().parents[2] / "checkpoints" / "mnist.json"
pytestmark = [
    pytest.mark.skipif(not MNIST.is_file(), reason="shipped MNIST checkpoint absent"),
    pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"),
]


def test_every_batch_takes_the_c_loop_and_agrees_with_the_module(monkeypatch):
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is not None, api.fast_path_reason
    used = []
    real_fast, real_module = api.fast, api.module
    monkeypatch.setattr(api, "fast", lambda x: used.append(("C", len(x))) or real_fast(x))
    monkeypatch.setattr(api, "module",
                        lambda x, *a: used.append(("TorchScript", len(x))) or real_module(x, *a))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 784))
    x = api.decode(list(images), 255, [("images", i) for i in range(len(images))])
    with torch.inference_mode():
        expected = torch.softmax(real_module(torch.from_numpy(x)), dim=-1).numpy()
        one = api.run_batch([ClassifyJob(x[:1])])[0]                       # 1 row
        seven = api.run_batch([ClassifyJob(x[:3]), ClassifyJob(x[3:7])])   # 7 rows (blocks of 6 + 1)
        whole = api.run_batch([ClassifyJob(x)])[0]                         # 8 rows
        api.run_batch([ClassifyJob(x[:2], every_step=True)])               # a sequence: TorchScript
    assert used == [("C", 1), ("C", 7), ("C", 8), ("TorchScript", 2)]
    np.testing.assert_allclose(one, expected[:1], atol=2e-5)
    np.testing.assert_allclose(np.concatenate(seven), expected[:7], atol=2e-5)
    np.testing.assert_allclose(whole, expected, atol=2e-5)      # float32 rounding over 784 steps
    assert (np.concatenate(seven).argmax(1) == expected[:7].argmax(1)).all()


def test_fast_path_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("AFRNN_FAST_RECURRENCE", "0")
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is None and "AFRNN_FAST_RECURRENCE=0" in api.fast_path_reason
