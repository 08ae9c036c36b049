"""The container commands of README.md and docs/deployment.md are safe to copy and name this release."""

import re
import tomllib
from pathlib import Path

import pytest

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", REPO / "docs" / "deployment.md"]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _run_commands(page: Path) -> list[str]:
    return [line.strip() for line in page.read_text().splitlines()
            if line.strip().startswith(("docker run ", "podman run "))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_run_examples_bind_loopback_pass_the_key_and_outlast_the_drain(page):
    drain_s = int(Settings(_env_file=None).request_timeout_s) + 5      # service.__main__
    commands = _run_commands(page)
    assert {c.split()[0] for c in commands} == {"docker", "podman"}, "examples for both engines"
    for command in commands:
        published = re.findall(r"(?:-p|--publish)[ =](\S+)", command)
        assert published and all(p.startswith("127.0.0.1:") for p in published), command
        assert re.search(r"-e AFRNN_API_KEY(\s|$)", command), f"no API key passed: {command}"
        (timeout,) = re.findall(r"--stop-timeout[ =](\d+)", command)
        assert int(timeout) >= drain_s, f"--stop-timeout {timeout} < the {drain_s} s drain: {command}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_image_tags_name_this_release(page):
    tags = re.findall(r"afrnn-serving:([\w.-]+)", page.read_text())
    release_tags = [t for t in tags if t != "dev"]           # :dev is CI's local build (make image)
    assert release_tags, f"{page.name} names no image tag"
    assert set(release_tags) == {VERSION}, f"{page.name}: tags {sorted(set(release_tags))}, release {VERSION}"
