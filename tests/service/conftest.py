"""Fixtures: tiny checkpoints exported with ``artifact.export.export_torchscript`` and real uvicorn
processes (``python -m service``) on free ports, driven with httpx.

The shared ``service`` (session scope) serves, from one model dir:

* ``mnist`` — a 2×8 AFRNN on 784 × 1 pixel sequences, ``cifar10`` — a 2×8 AFRNN on 1024 × 3,
  ``pendulum`` — a 2×8 AFRNN on the 29-step pendulum protocol (all with random weights);
* ``corrupt`` — exported, then one byte of its .pt flipped (its SHA-256 no longer matches);
* ``garbled.json`` — a manifest that is not valid JSON.

It requires the API key ``test-key`` and holds batches open for 20 ms (so that concurrent requests
are batched with certainty).
"""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from artifact import specs
from artifact.export import export_torchscript
from model import count_parameters, paper_model
from physics.encoding import network_inputs
from training.data.sequences import ImageSequences

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key"

_blocking: list[threading.Event] = []


def blocking_event() -> threading.Event:
    """An event that a job blocks on until the test sets it; set after each test whatever happened
    (``_unblock_workers``), so that a failed test leaves no worker thread blocked."""
    event = threading.Event()
    _blocking.append(event)
    return event


@pytest.fixture(autouse=True)
def _unblock_workers():
    yield
    while _blocking:
        _blocking.pop().set()


def _manifest_fields(model: torch.nn.Module, name: str, task: str, version: str = "0.1.0-test") -> dict:
    """Every ``Manifest`` field but ``artifact`` for ``model`` served as ``task``."""
    if task == "mnist":
        input_spec, output = specs.mnist_input_spec(), specs.classes_output_spec(specs.MNIST_CLASS_NAMES)
    elif task == "cifar10":
        input_spec, output = specs.cifar10_input_spec(), specs.classes_output_spec(specs.CIFAR10_CLASS_NAMES)
    elif task == "pendulum":
        input_spec, output = specs.pendulum_input_spec(29), specs.pendulum_output_spec()
    else:
        raise ValueError(task)
    config = dataclasses.asdict(model.config)
    return dict(
        name=name, version=version, task=task, description=f"a tiny {task} model with random weights",
        architecture=dict(family="lstm" if model.variant == "lstm" else "afrnn", variant=model.variant,
                          config=config),
        parameters=count_parameters(model), input=input_spec, output=output, metrics={"test_accuracy": 0.1},
        training=dict(epochs=0.0, wall_time_s=0.0, hardware="none (random weights)", command="pytest"),
        dataset_hash="none", code_version="test", torch_version=torch.__version__)


@pytest.fixture(scope="session")
def manifest_fields():
    return _manifest_fields


def tiny_model(task: str, seed: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    options = dict(layer_sizes=(8, 8), epsilon=0.1, gamma=0.1)
    options.update(overrides)
    return paper_model(task, "afrnn", **options).eval()


def export_tiny(out_dir: Path, task: str, name: str | None = None, seed: int = 0, **overrides):
    model = tiny_model(task, seed, **overrides)
    export_torchscript(model, out_dir, _manifest_fields(model, name or task, task))
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """``python -m service`` in a subprocess, its stderr (JSON-lines log) captured in a file."""

    def __init__(self, model_dir: Path, log_path: Path, *args: str, api_key: str | None = None,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        extra_env = env
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("AFRNN_API_KEY", None)
        if api_key is not None:
            env["AFRNN_API_KEY"] = api_key
        env.update(extra_env or {})
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--model-dir", str(model_dir), "--port", str(self.port),
             "--log-format", "json", *args],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 120.0) -> "ServiceProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service not ready after {timeout_s} s:\n{self.log()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def client(self, api_key: str | None = API_KEY, **kwargs) -> httpx.Client:
        headers = {"X-API-Key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def async_client(self, api_key: str | None = API_KEY, **kwargs) -> httpx.AsyncClient:
        headers = {"X-API-Key": api_key} if api_key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def export_model():
    """``export_model(out_dir, task, name=None, seed=0, **config_overrides)``: export a small AFRNN."""
    return export_tiny


@pytest.fixture(scope="session")
def start_service(tmp_path_factory):
    """``start_service(model_dir, *cli_args, api_key=None, wait=True, env=None)``: a started ServiceProcess
    (``env``: extra environment variables, e.g. ``AFRNN_ADMIN_KEY``); every
    one still running at the end of the session is stopped."""
    started: list[ServiceProcess] = []

    def start(model_dir: Path, *args: str, api_key: str | None = None, wait: bool = True,
              env: dict[str, str] | None = None) -> ServiceProcess:
        log_path = tmp_path_factory.mktemp("logs") / "service.log"
        proc = ServiceProcess(model_dir, log_path, *args, api_key=api_key, env=env)
        started.append(proc)
        return proc.wait_ready() if wait else proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    export_tiny(out, "mnist", seed=1)
    export_tiny(out, "cifar10", seed=2)
    export_tiny(out, "pendulum", seed=3)
    export_tiny(out, "mnist", name="corrupt", seed=4)
    pt = out / "corrupt.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pt.write_bytes(bytes(data))
    (out / "garbled.json").write_text("{ not json")
    return out


@pytest.fixture(scope="session")
def tiny_models(model_dir) -> dict[str, torch.nn.Module]:
    """The eager models behind the shared service's checkpoints (independent oracles)."""
    return {"mnist": tiny_model("mnist", 1), "cifar10": tiny_model("cifar10", 2),
            "pendulum": tiny_model("pendulum", 3)}


# the shared service's flags; 'corrupt' and 'garbled' never load: readiness under the 'any' policy (the
# default 'all' would hold the service not-ready for ever, which tests/service/test_reliability.py checks)
SHARED_SERVICE_ARGS = ("--max-queue-delay-ms", "20", "--max-body-bytes", "1000000",
                       "--readiness-policy", "any")


@pytest.fixture(scope="session")
def service(model_dir, start_service):
    return start_service(model_dir, *SHARED_SERVICE_ARGS, api_key=API_KEY)


@pytest.fixture(scope="session")
def client(service):
    with service.client() as c:
        yield c


class Oracle:
    """Independent reference computations: the eager models and the training code's normalisation."""

    def __init__(self, models: dict[str, torch.nn.Module]):
        self.models = models

    @staticmethod
    def random_image(seed: int, shape: tuple[int, ...]) -> list:
        """A deterministic pseudo-random 0–255 integer image of ``shape``, as nested lists."""
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, shape, generator=g).tolist()

    def probabilities(self, task: str, pixels_255, every_step: bool = False) -> torch.Tensor:
        """softmax(model(x)) for one 0–255 image in (T·C,) / (T, C) / (H, W[, C]) layout."""
        mean, std = {"mnist": (specs.MNIST_MEAN, specs.MNIST_STD),
                     "cifar10": (specs.CIFAR10_MEAN, specs.CIFAR10_STD)}[task]
        channels = len(mean)
        pixels = torch.tensor(pixels_255, dtype=torch.uint8).reshape(1, -1, channels)
        x = ImageSequences(pixels, torch.zeros(1, dtype=torch.int64), mean, std).normalise(pixels)
        with torch.no_grad():
            return torch.softmax(self.models[task](x, None, every_step), dim=-1)[0]

    def pendulum(self, initial_radians: list[list[float]], steps: int) -> torch.Tensor:
        """The eager pendulum model's (N, steps, 4) prediction in radians."""
        x = network_inputs(torch.tensor(initial_radians, dtype=torch.float32), steps)
        with torch.no_grad():
            return self.models["pendulum"](x, None, True)


@pytest.fixture(scope="session")
def oracle(tiny_models) -> Oracle:
    return Oracle(tiny_models)


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total


@pytest.fixture(scope="session")
def read_metric():
    return metric_value
