"""The README's commands and examples, run as a new user would run them on this checkout.

Quick commands run to completion; training commands, which need the data sets and hours, are parsed
and validated by the trainer's own argument handling without training. The usage examples run
against a real service on the shipped checkpoints, with and without an API key."""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from training.cli import resolve

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def commands() -> list[str]:
    """Every command line of the README's bash blocks, continuation lines joined, comments dropped."""
    lines = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(shlex.join(words))
    return lines


def command(prefix: str) -> list[str]:
    """The words of the README's one command that starts with ``prefix``."""
    (line,) = [c for c in commands() if c.startswith(prefix)]
    return shlex.split(line)


def run(args: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


# -- make serve, make test ---------------------------------------------------------------------------

def _recipe(target: str) -> str:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", makefile, re.M)
    assert match, f"the Makefile has no {target!r} target"
    return match.group(1)


def test_make_serve_serves_the_shipped_checkpoints_and_make_test_is_what_ci_runs():
    assert "make serve" in commands()[0] and "make test" in commands()[1]
    assert re.search(r"^serve: install$", (REPO / "Makefile").read_text(), re.M)
    assert _recipe("serve").split() == ["$(BIN)/afrnn-serve"]       # no flags: every default applies
    from service.config import DEFAULT_MODEL_DIR, Settings
    assert Settings(_env_file=None).model_dir == DEFAULT_MODEL_DIR == REPO / "checkpoints"
    test_recipe = _recipe("test")
    assert "ruff check" in test_recipe and "pytest -q\n" in test_recipe    # the whole suite, no selection
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in ci], ".ci/run must run the README's make test"


# -- quick commands ----------------------------------------------------------------------------------

def test_the_results_table_command_prints_the_readme_figures():
    words = command("python -m training.results_table")
    done = run([sys.executable, *words[1:]])
    assert done.returncode == 0, done.stderr
    for manifest in sorted((REPO / "checkpoints").glob("*.json")):
        assert f"`checkpoints/{manifest.name}`" in done.stdout
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| `")}
    readme = README.read_text()
    for name, figure in [("mnist", "97.72 %"), ("cifar10", "49.74 %"), ("mnist-frnn", "13.81 %"),
                         ("pendulum", "MSE 0.0199")]:
        assert figure in rows[f"`checkpoints/{name}.json`"], (name, figure)
        assert figure.removeprefix("MSE ") in readme, f"the README's table lacks {figure}"


def test_afrnn_demo_runs():
    done = run([str(Path(sys.executable).parent / "afrnn-demo")], timeout=300)
    assert done.returncode == 0, done.stderr
    assert "50826 parameters (paper: 50826)" in done.stdout


@pytest.mark.slow
def test_the_stability_command_runs_on_a_clone_without_a_data_directory(tmp_path):
    """The README's command, as on a fresh clone: no $AFRNN_DATA_DIR and no ../shared/data."""
    words = command("afrnn-stability --checkpoint")
    words[words.index("--out") + 1] = str(tmp_path / "report.json")
    words[words.index("--plots") + 1] = str(tmp_path / "figs")
    script = ("import pathlib, sys\n"
              "import training.data.paths as paths\n"
              "paths.WORKSPACE_DATA_DIR = pathlib.Path(sys.argv[1])\n"
              "from training.stability_cli import main\n"
              "sys.exit(main(sys.argv[2:]))\n")
    env = {k: v for k, v in os.environ.items() if k != "AFRNN_DATA_DIR"}
    done = run([sys.executable, "-c", script, str(tmp_path / "no-data"), *words[1:]], env=env)
    assert done.returncode == 0, done.stderr
    assert "from the shipped mnist sample" in done.stderr
    assert (tmp_path / "report.json").is_file() and (tmp_path / "figs" / "report.png").is_file()


# -- long commands: parsed, not run ------------------------------------------------------------------

TRAINING_COMMANDS = [c for c in commands() if c.startswith("afrnn-train ")]


def test_the_readme_shows_training_commands():
    assert len(TRAINING_COMMANDS) >= 3


@pytest.mark.parametrize("line", TRAINING_COMMANDS)
def test_a_training_command_is_valid(line):
    """The trainer's own parsing and validation (argparse and TrainConfig) accept it."""
    words = shlex.split(line)[1:]
    cfg, _, _ = resolve(words)             # an unknown flag or an invalid value exits (SystemExit)
    assert cfg.task == words[words.index("--task") + 1]
    assert cfg.model == words[words.index("--model") + 1]


def test_the_shipped_mnist_lineage_is_the_one_in_its_manifest():
    """The README's two MNIST commands are the runs that made checkpoints/mnist.json."""
    import json
    manifest = json.loads((REPO / "checkpoints" / "mnist.json").read_text())
    first, second = [c for c in TRAINING_COMMANDS if "--task mnist" in c]
    cfg, _, _ = resolve(shlex.split(second)[1:])
    shipped = manifest["training"]["hyperparameters"]
    assert cfg.init_from == shipped["init_from"]
    out_dir = shlex.split(first)[shlex.split(first).index("--out-dir") + 1]
    assert shipped["init_from"].startswith(out_dir + "/")
    for field in ("optimizer", "lr", "lr_schedule", "grad_clip", "epochs", "discretisation"):
        assert getattr(cfg, field) == shipped[field], field


# -- usage examples against a real service -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=[None, "readme-key"], ids=["no-key", "with-key"])
def service(request, tmp_path_factory):
    """``python -m service`` on the shipped checkpoints, as ``make serve`` starts it; with a key or not."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFRNN_")}
    if request.param:
        env["AFRNN_API_KEY"] = request.param
    log_path = tmp_path_factory.mktemp("readme-service") / "service.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    status = None
    while status != 200:
        try:
            status = httpx.get(f"{url}/health/ready", timeout=5).status_code
        except httpx.TransportError:
            pass
        if status not in (None, 200, 503) or proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the service did not become ready (last status {status}):\n"
                        f"{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    yield url, request.param
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()


def _example(code: str, url: str) -> str:
    assert "http://127.0.0.1:8000" in code
    return code.replace("http://127.0.0.1:8000", url)


def _run_example(code: str, key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AFRNN_API_KEY"}
    if key:
        env["AFRNN_API_KEY"] = key
    return run([sys.executable, "-c", code], timeout=300, env=env)


def test_the_httpx_example_labels_shipped_test_images(service):
    url, key = service
    (code,) = [b for b in blocks("python") if "import httpx" in b]
    done = _run_example(_example(code, url), key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "[7, 2, 1] true: [7, 2, 1]"
    assert done.stdout.splitlines()[2] == "stable"


def test_the_client_example_runs(service):
    url, key = service
    (code,) = [b for b in blocks("python") if "from afrnn_client import" in b]
    done = _run_example(_example(code, url), key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["7", "stable", "422 ('pixels',)", "7 7"]


def test_the_curl_examples_answer_without_a_key(service):
    url, key = service
    if key:
        pytest.skip("the README's curl examples are for a local server without a key")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (block,) = [b for b in blocks("bash") if "curl -s 127.0.0.1:8000" in b]
    script = block.replace("127.0.0.1:8000", url.removeprefix("http://"))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"status":"ready"' in done.stdout
    assert '"predictions":[{"label":7' in done.stdout
    assert '"model":"pendulum"' in done.stdout


def test_the_python_examples_need_no_key_for_a_local_server():
    """Neither example reads the key as a required variable (``os.environ[...]``)."""
    for code in blocks("python"):
        assert 'os.environ["AFRNN_API_KEY"]' not in code
