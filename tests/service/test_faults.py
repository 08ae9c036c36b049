"""Fault injection: a .pt with one flipped byte, a manifest that contradicts its model, a checkpoint
whose forward raises (test-only), and SIGTERM with 32 requests in flight."""

import asyncio
import json
import signal
import time
from typing import Optional

import httpx
import pytest
from torch import Tensor, nn

from artifact.export import export_torchscript

MNIST_ZERO = {"model": "mnist", "pixels": [0] * 784, "scale": 255}
# Normalised MNIST: a 255 pixel is (1 − 0.1307) / 0.3081 ≈ 2.82; the poisoned model raises above 2.5.
POISON = {"model": "poisoned", "pixels": [255] + [0] * 783, "scale": 255}
CLEAN = {"model": "poisoned", "pixels": [0] * 784, "scale": 255}


class PoisonedForward(nn.Module):
    """Test-only checkpoint: the wrapped classifier, except that ``forward`` raises when any input value
    exceeds 2.5 (a 255 pixel after MNIST normalisation)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.state_size = inner.state_size

    def forward(self, x: Tensor, h0: Optional[Tensor] = None,  # noqa: UP045 (TorchScript)
                every_step: bool = False) -> Tensor:
        if bool((x > 2.5).any()):
            raise RuntimeError("test-only poisoned checkpoint: an input value exceeds 2.5")
        return self.inner(x, h0, every_step)


@pytest.fixture(scope="module")
def fault_service(tmp_path_factory, export_model, manifest_fields, start_service):
    models = tmp_path_factory.mktemp("fault-models")
    inner = export_model(models, "mnist")                      # a healthy neighbour
    export_torchscript(PoisonedForward(inner), models, manifest_fields(inner, "poisoned", "mnist"))
    export_model(models, "mnist", name="flipped", seed=5)
    pt = models / "flipped.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 3] ^= 0x01                                # one flipped bit of one byte
    pt.write_bytes(bytes(data))
    export_model(models, "mnist", name="misdescribed", seed=6)
    manifest = json.loads((models / "misdescribed.json").read_text())
    manifest["input"]["sequence_length"] = 783                 # contradicts the MNIST pixel protocol
    (models / "misdescribed.json").write_text(json.dumps(manifest))
    proc = start_service(models, "--readiness-policy", "any", "--max-queue-delay-ms", "50")
    yield proc
    proc.stop()


def test_a_flipped_byte_makes_the_model_unavailable_not_loaded(fault_service):
    with httpx.Client(base_url=fault_service.url, timeout=30) as c:
        detail = c.get("/models/flipped").json()
        assert detail["status"] == "unavailable" and detail["checksum_verified"] is False
        assert "SHA-256" in detail["reason"] and "flipped.pt" in detail["reason"]
        r = c.post("/classify", json={**MNIST_ZERO, "model": "flipped"})
        assert r.status_code == 503 and "SHA-256" in r.json()["detail"]
        assert c.post("/classify", json=MNIST_ZERO).status_code == 200


def test_a_manifest_contradicting_its_model_is_caught_at_load(fault_service):
    detail = httpx.get(fault_service.url + "/models/misdescribed").json()
    assert detail["status"] == "unavailable"
    assert "contradicts its model" in detail["reason"]
    assert "input.sequence_length = 783" in detail["reason"] and "784" in detail["reason"]
    ready = httpx.get(fault_service.url + "/health/ready").json()
    assert "contradicts its model" in ready["models"]["misdescribed"]


def test_a_raising_forward_fails_exactly_that_batch_and_the_next_is_served(fault_service, read_metric):
    def errors() -> float:
        return read_metric(httpx.get(fault_service.url + "/metrics").text, "afrnn_inference_errors_total",
                           {"model": "poisoned"})

    before = errors()
    with httpx.Client(base_url=fault_service.url, timeout=30) as c:
        bad = c.post("/classify", json=POISON)
        assert bad.status_code == 500 and bad.json() == {"detail": "internal server error"}
        assert errors() == before + 1
        good = c.post("/classify", json=CLEAN)
        assert good.status_code == 200 and good.json()["batch_size"] == 1

    async def mixed():          # one poisoned request among clean ones, within one 50 ms batch window
        async with httpx.AsyncClient(base_url=fault_service.url, timeout=30) as ac:
            return await asyncio.gather(*(ac.post("/classify", json=POISON if i == 2 else CLEAN)
                                          for i in range(5)))

    codes = [r.status_code for r in asyncio.run(mixed())]
    assert codes == [200, 200, 500, 200, 200], codes
    assert errors() == before + 2
    assert httpx.get(fault_service.url + "/health/live").status_code == 200


def test_sigterm_with_32_requests_in_flight(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist", layer_sizes=(256, 256))      # ~25 ms per forward pass
    proc = start_service(tmp_path, "--max-batch-size", "1")
    grace_s = 30 + 5                                             # request_timeout_s + 5 (service.__main__)

    async def scenario():
        async with httpx.AsyncClient(base_url=proc.url, timeout=60,
                                     limits=httpx.Limits(max_connections=64)) as ac:
            tasks = [asyncio.ensure_future(ac.post("/classify", json=MNIST_ZERO)) for _ in range(32)]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            proc.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.2)
            try:                                              # a new client after the signal
                late = await httpx.AsyncClient(timeout=5).post(proc.url + "/classify", json=MNIST_ZERO)
                late = late.status_code
            except httpx.TransportError as err:
                late = type(err).__name__
            return await asyncio.gather(*tasks, return_exceptions=True), late, signalled

    responses, late, signalled = asyncio.run(scenario())
    code = proc.proc.wait(grace_s + 10)
    exited_after = time.monotonic() - signalled
    assert [getattr(r, "status_code", repr(r)) for r in responses] == [200] * 32
    assert late in ("ConnectError", 503), late                  # refused: no new work after SIGTERM
    assert code == 0, proc.log()[-2000:]
    assert exited_after < grace_s
    assert "shutdown complete" in proc.log()


@pytest.mark.parametrize("step", ["euler", "imex"])
def test_a_manifest_naming_the_wrong_step_is_caught(tmp_path, export_model, step):
    """A manifest that calls an IMEX model explicit Euler (or the other way round) would tell users
    the wrong step and its stability guarantee: the load-time check reads the module's own flag."""
    from artifact.export import load_exported
    from service.consistency import ManifestMismatchError, check_manifest_matches_module

    export_model(tmp_path, "mnist", discretisation=step)
    module, manifest = load_exported(tmp_path / "mnist.json")
    check_manifest_matches_module(manifest, module)                       # as exported: consistent
    other = "euler" if step == "imex" else "imex"
    manifest.architecture.config["discretisation"] = other
    with pytest.raises(ManifestMismatchError, match=f"discretisation = {other} but the module has {step}"):
        check_manifest_matches_module(manifest, module)
