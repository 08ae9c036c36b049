"""``--model-worker process``: a classifier's forward passes in a child process give exactly the
in-process answers, a dead child is replaced, and the child ends with the service."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.export import load_exported
from service.model_process import ModelProcess, ModelProcessError
from service.tasks.classifier import ClassifierAPI


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory, export_model) -> Path:
    out = tmp_path_factory.mktemp("process-model")
    export_model(out, "mnist", seed=5)
    return out / "mnist.json"


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_child_process_answers_exactly_as_the_model_in_this_process(tiny_mnist):
    module, manifest = load_exported(tiny_mnist)
    local = ClassifierAPI(manifest, module, torch.device("cpu"))
    x = np.random.default_rng(0).normal(size=(5, 784, 1)).astype(np.float32)
    with torch.inference_mode():
        expected = {(rows, steps): local.predict(torch.from_numpy(x[:rows]), steps).numpy()
                    for rows, steps in ((5, False), (1, False), (3, True))}
    worker = ModelProcess(tiny_mnist, threads=1, max_batch_size=8).start()
    try:
        assert worker.pid != os.getpid() and worker.pid in _children(os.getpid())
        for rows, steps in ((5, False), (1, False), (3, True)):
            got = worker.predict(x[:rows], steps)
            np.testing.assert_allclose(got, expected[rows, steps], rtol=1e-6, atol=1e-7)
        assert got.shape == (3, 784, 10)
        # a killed child is replaced before the next batch, which is answered
        first = worker.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first in _children(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        np.testing.assert_allclose(worker.predict(x[:1], False), expected[1, False], rtol=1e-6, atol=1e-7)
        assert worker.restarts == 1 and worker.pid != first
        # a forward that raises is reported, and the child keeps serving
        with pytest.raises(ModelProcessError, match="model process"):
            worker.predict(np.zeros((1, 784, 3), np.float32), False)     # 3 channels for a 1-channel model
        np.testing.assert_allclose(worker.predict(x[:1], False), expected[1, False], rtol=1e-6, atol=1e-7)
    finally:
        last = worker.pid
        worker.close()
    assert last not in _children(os.getpid())


def test_a_model_that_cannot_load_is_a_start_error(tmp_path, tiny_mnist):
    broken = tmp_path / "mnist.json"
    broken.write_text(tiny_mnist.read_text())
    (tmp_path / "mnist.pt").write_bytes(b"not a TorchScript archive")
    with pytest.raises(ModelProcessError, match="failed to start: .*mnist"):
        ModelProcess(broken, threads=1, max_batch_size=8).start()


def test_service_with_process_workers_classifies_as_the_model_and_stops_cleanly(tiny_mnist, oracle,
                                                                                 start_service):
    service = start_service(tiny_mnist.parent, "--model-worker", "process")
    children = _children(service.proc.pid)
    assert len(children) >= 1                               # the model's process (and no other model)
    image = oracle.random_image(7, (28, 28))
    with service.client(api_key=None) as client:
        r = client.post("/classify", json={"model": "mnist", "images": [image] * 3, "scale": 255})
    assert r.status_code == 200, r.text
    module, manifest = load_exported(tiny_mnist)
    api = ClassifierAPI(manifest, module, torch.device("cpu"))
    x = api.decode([image] * 3, 255, [("images", i) for i in range(3)])     # the same 3-row batch
    with torch.inference_mode():
        expected = api.predict(torch.from_numpy(x), False).numpy()[0]
    for prediction in r.json()["predictions"]:
        np.testing.assert_allclose(prediction["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert service.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() and
                   "afrnn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                   for pid in children)
