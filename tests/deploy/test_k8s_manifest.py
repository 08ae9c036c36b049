"""``deploy/k8s.yaml`` parses as Kubernetes YAML and agrees with the image and the service settings.

No cluster here, so this checks what can go wrong without one: every document against the Kubernetes
API schemas in strict mode (``kubernetes-validate``, which bundles its schemas: no network), the
"restricted" Pod Security Standard read off the pod template, the GPU limit, the probes on the real
health routes, ports and labels that line up between Deployment, Service, PodDisruptionBudget,
HorizontalPodAutoscaler and Dockerfile, the non-root user the Dockerfile declares, the API key from a
Secret, a release tag on the image, and env vars that ``service.config.Settings`` knows and accepts.
"""

import re
import tomllib
from pathlib import Path

import pytest

from service.config import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (needed to parse deploy/k8s.yaml)")

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "k8s.yaml"
# The Kubernetes release whose schemas the manifest is checked against (the newest kubernetes-validate
# 1.37.0 bundles); the manifest uses only GA APIs (apps/v1, v1, policy/v1, autoscaling/v2).
KUBERNETES_VERSION = "1.37.0"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
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


@pytest.fixture(scope="module")
def pod_spec(documents) -> dict:
    return documents["Deployment"]["spec"]["template"]["spec"]


def test_manifest_holds_deployment_service_disruption_budget_and_autoscaler(documents):
    assert {kind: d["apiVersion"] for kind, d in documents.items()} == {
        "Deployment": "apps/v1", "Service": "v1", "PodDisruptionBudget": "policy/v1",
        "HorizontalPodAutoscaler": "autoscaling/v2"}


def test_every_document_passes_kubernetes_validate_in_strict_mode():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')")
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    for document in documents:
        # raises ValidationError (a wrong type, a missing required field, or in strict mode any field the
        # schema does not know, e.g. a typo) or SchemaNotFoundError (an apiVersion/kind pair that does
        # not exist in that release)
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    """The check above can fail: a misspelt field in the pod's securityContext is an error."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate missing")
    deployment = next(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# -- the "restricted" Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
#    its baseline controls included, checked field by field on the pod template --------------------------

RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def _all_containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"],
            *pod_spec.get("ephemeralContainers", [])]


def _restricted_violations(pod_spec: dict) -> list[str]:
    """Every rule of the restricted profile that ``pod_spec`` breaks (empty: admitted)."""
    bad = []
    pod_sc = pod_spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            bad.append(f"{key} is true")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            bad.append(f"volume {volume['name']} of type {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    if pod_sc.get("seccompProfile", {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"pod seccompProfile {pod_sc['seccompProfile']}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            bad.append(f"unsafe sysctl {sysctl['name']}")
    if pod_sc.get("seLinuxOptions", {}).get("type") not in (None, "", "container_t", "container_init_t",
                                                              "container_kvm_t", "container_engine_t"):
        bad.append("pod SELinux type")
    for container in _all_containers(pod_spec):
        name, sc = container["name"], container.get("securityContext", {})
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot") is False or not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp}")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {capabilities['add']}")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{name}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            bad.append(f"{name}: hostPort")
        if sc.get("appArmorProfile", {}).get("type") == "Unconfined":
            bad.append(f"{name}: AppArmor unconfined")
    return bad


def test_pod_meets_the_restricted_pod_security_standard(pod_spec):
    assert _restricted_violations(pod_spec) == []


def test_the_restricted_check_catches_each_rule(pod_spec):
    """The checker is not vacuous: each weakening of the real pod spec is reported."""
    import copy

    def weakened(change) -> list[str]:
        spec = copy.deepcopy(pod_spec)
        change(spec, spec["containers"][0]["securityContext"])
        return _restricted_violations(spec)

    assert weakened(lambda pod, c: c.pop("allowPrivilegeEscalation"))
    assert weakened(lambda pod, c: (pod["securityContext"].pop("seccompProfile"), c.pop("seccompProfile")))
    assert weakened(lambda pod, c: c.update(seccompProfile={"type": "Unconfined"}))
    assert weakened(lambda pod, c: c["capabilities"].update(drop=["NET_RAW"]))
    assert weakened(lambda pod, c: c["capabilities"].update(add=["SYS_ADMIN"]))
    assert weakened(lambda pod, c: c.update(runAsNonRoot=False))
    assert weakened(lambda pod, c: pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}}))
    assert weakened(lambda pod, c: pod.update(hostNetwork=True))


def test_root_filesystem_is_read_only_with_a_writable_tmp(pod_spec, container):
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume
    # the image points matplotlib's config/cache dir into /tmp, the one writable place
    env = dict(line.split("=", 1) for line in _dockerfile_env())
    assert env["MPLCONFIGDIR"].startswith("/tmp/")


def _dockerfile_env() -> list[str]:
    """``KEY=value`` items of the runtime stage's ENV instructions (continuation lines joined)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text[text.rindex("\nFROM "):]
    items = []
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            items += line.split()[1:]
    return items


def test_api_key_comes_from_a_secret(container):
    (entry,) = [e for e in container["env"] if e["name"] == "AFRNN_API_KEY"]
    assert "value" not in entry, "the API key must not be written into the manifest"
    assert set(entry["valueFrom"]["secretKeyRef"]) == {"name", "key"}


def test_image_tag_names_the_release(container):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    repository, _, tag = container["image"].rpartition(":")
    assert repository and "/" not in tag, container["image"]
    assert tag == version, f"image tag {tag!r} should be the release {version!r}, not latest"


def test_disruption_budget_and_autoscaler_target_the_deployment(documents, pod_spec):
    pod_labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    pdb = documents["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = documents["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": documents["Deployment"]["metadata"]["name"]}
    # the budget can be met while the autoscaler is at its floor, so a drain never blocks forever
    assert 1 <= pdb["minAvailable"] < hpa["minReplicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    # CPU utilisation is relative to the request, so the container must declare one
    assert all("cpu" in c["resources"]["requests"] for c in pod_spec["containers"])
    assert "replicas" not in documents["Deployment"]["spec"], "the autoscaler owns the replica count"


def test_grace_period_covers_pre_stop_and_the_service_drain(pod_spec, container):
    drain_s = Settings(_env_file=None).request_timeout_s + 5      # service.__main__'s graceful timeout
    pre_stop_s = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec["terminationGracePeriodSeconds"] >= pre_stop_s + drain_s


def test_each_replica_asks_for_one_gpu(container):
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_probes_hit_the_health_routes_on_the_health_port_the_image_exposes(container):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    exposed = [int(p) for p in _dockerfile_instruction("EXPOSE").split()]
    assert [ports["http"], ports["health"]] == exposed
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["AFRNN_PORT"]) == ports["http"] and int(env["AFRNN_HEALTH_PORT"]) == ports["health"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}


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
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("AFRNN_") and "value" in e}
    fields = {f"AFRNN_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {sorted(set(env) - fields)}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)               # raises pydantic.ValidationError on a bad value
    assert settings.port == int(env["AFRNN_PORT"]) and str(settings.model_dir) == env["AFRNN_MODEL_DIR"]
