"""``deploy/k8s.yaml`` parses as Kubernetes YAML and agrees with the image and the service settings.

No cluster here, so this checks what can go wrong without one: the GPU limit, the probes on the real
health routes, ports and labels that line up between Deployment, Service and Dockerfile, the non-root
user the Dockerfile declares, and env vars that ``service.config.Settings`` knows and accepts.
"""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (needed to parse deploy/k8s.yaml)")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "k8s.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def container(documents) -> dict:
    (only,) = documents["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def _dockerfile_instruction(name: str) -> str:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    values = [line.split(None, 1)[1] for line in lines if line.startswith(name + " ")]
    assert values, f"Dockerfile has no {name}"
    return values[-1]      # the runtime stage's


def test_manifest_holds_a_deployment_and_a_service(documents):
    assert set(documents) == {"Deployment", "Service"}
    assert documents["Deployment"]["apiVersion"] == "apps/v1" and documents["Service"]["apiVersion"] == "v1"


def test_each_replica_asks_for_one_gpu(container):
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_probes_hit_the_service_health_routes_on_the_exposed_port(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(_dockerfile_instruction("EXPOSE"))
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


def test_service_selects_the_pods_and_targets_their_port(documents, container):
    pod_labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = documents["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert documents["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in container["ports"]}


def test_pod_runs_as_the_image_user(documents):
    uid, gid = re.fullmatch(r"(\d+):(\d+)", _dockerfile_instruction("USER")).groups()
    security = documents["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))


def test_env_vars_are_settings_the_service_accepts(container, monkeypatch):
    config = pytest.importorskip("service.config", reason="service.config is not written yet")
    env = {e["name"]: e["value"] for e in container["env"]}
    fields = {f"AFRNN_{name.upper()}" for name in config.Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {sorted(set(env) - fields)}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = config.Settings(_env_file=None)        # raises pydantic.ValidationError on a bad value
    assert settings.port == int(env["AFRNN_PORT"]) and str(settings.model_dir) == env["AFRNN_MODEL_DIR"]
