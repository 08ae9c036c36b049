"""The Dockerfile's base image names its registry: podman resolves no short names. (The run examples
in README.md and docs/deployment.md are checked by tests/docs/test_deployment_examples.py.)"""

from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_base_image_is_fully_qualified():
    lines = DOCKERFILE.read_text().splitlines()
    (default,) = [line.split("=", 1)[1] for line in lines if line.startswith("ARG BASE_IMAGE=")]
    registry = default.split("/", 1)[0]
    assert "." in registry or ":" in registry, f"{default}: podman needs the registry in the name"
