"""The README's deployment section: every setting the service reads from the environment, and run
examples that are safe to copy."""

import re
from pathlib import Path

from service.config import Settings

DOC = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_row_in_the_configuration_table():
    text = DOC.read_text()
    missing = [f"AFRNN_{name.upper()}" for name in Settings.model_fields
               if f"| `AFRNN_{name.upper()}` |" not in text]
    assert not missing, f"README's configuration table lacks {missing}"


def _run_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip().startswith(("docker run ", "podman run "))]


def test_run_examples_are_safe_to_copy_for_docker_and_podman():
    """Each `docker run` / `podman run` example publishes on loopback only, passes an API key, and
    gives the engine a stop timeout that covers the service's drain (issue 15)."""
    drain_s = int(Settings(_env_file=None).request_timeout_s) + 5      # service.__main__
    commands = _run_commands(DOC.read_text())
    assert {c.split()[0] for c in commands} == {"docker", "podman"}, "examples for both engines"
    for command in commands:
        published = re.findall(r"(?:-p|--publish)[ =](\S+)", command)
        assert published and all(p.startswith("127.0.0.1:") for p in published), command
        assert re.search(r"-e AFRNN_API_KEY(\s|$)", command), f"no API key passed: {command}"
        (timeout,) = re.findall(r"--stop-timeout[ =](\d+)", command)
        assert int(timeout) >= drain_s, f"--stop-timeout {timeout} < the {drain_s} s drain: {command}"
        image = command.split()[-1]
        assert image.rpartition(":")[2][:1].isdigit(), f"examples run a release tag: {command}"


def test_base_image_is_fully_qualified():
    lines = (DOC.parent / "Dockerfile").read_text().splitlines()
    (default,) = [line.split("=", 1)[1] for line in lines if line.startswith("ARG BASE_IMAGE=")]
    registry = default.split("/", 1)[0]
    assert "." in registry or ":" in registry, f"{default}: podman needs the registry in the name"
