"""/classify's C Euler loop gives the shipped model's own probabilities, and is used where it wins."""

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


def test_batches_up_to_the_crossover_take_the_c_loop_and_agree_with_the_module(monkeypatch):
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is not None, api.fast_path_reason
    api.fast_max_rows = 7                       # as if measured: C loop up to 7 rows, TorchScript above
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
        one = api.run_batch([ClassifyJob(x[:1])])[0]                       # 1 row: C
        seven = api.run_batch([ClassifyJob(x[:3]), ClassifyJob(x[3:7])])   # 7 rows (blocks of 6 + 1): C
        whole = api.run_batch([ClassifyJob(x)])[0]                         # 8 rows: TorchScript
    assert used == [("C", 1), ("C", 7), ("TorchScript", 8)]
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)
    np.testing.assert_allclose(np.concatenate(seven), expected[:7], atol=1e-5)
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    assert (np.concatenate(seven).argmax(1) == expected[:7].argmax(1)).all()


def test_warmup_measures_the_crossover_on_this_cpu():
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    api.warmup(8)
    assert api.fast_max_rows in (0, 1, 2, 4, 8)          # halving from the full batch down
    if api.fast_max_rows < 8:
        assert f"above {api.fast_max_rows} rows" in api.fast_path_reason


def test_fast_path_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("AFRNN_FAST_RECURRENCE", "0")
    module, manifest = load_exported(MNIST)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    assert api.fast is None and "AFRNN_FAST_RECURRENCE=0" in api.fast_path_reason
    assert api.fast_max_rows == 0
