"""``deploy/kserve/*.yaml`` are resources KServe accepts, and they agree with the service they run.

No cluster here, so each document is read as the KServe Python SDK's own type (``kserve.models``, with
the Kubernetes types it refers to from ``kubernetes.client``), strictly: a key that the type does not
declare, a value of the wrong type or a missing required field is an error, and the SDK's serialiser
must give back every key and value of the document that was read (nothing dropped, nothing coerced).
Then the contents: kinds and API versions, the V2 protocol, the model format shared by runtime and
InferenceService, the release's image, ``AFRNN_*`` variables that ``service.config.Settings`` knows and
accepts, probes on routes the app serves without a key, one port (Knative's rule) that the service
listens on, and the canary resource differing from the base one only in its rollout fields.
"""

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from service.api.route_classes import RouteClass, RouteTable
from service.config import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install -e '.[dev]')")
kserve = pytest.importorskip("kserve", reason="the KServe SDK is not installed (pip install -e '.[dev]')")
kubernetes_client = pytest.importorskip("kubernetes.client", reason="kubernetes is not installed")
pydantic = pytest.importorskip("pydantic")

REPO = Path(__file__).resolve().parents[2]
KSERVE = REPO / "deploy" / "kserve"
RUNTIME = KSERVE / "servingruntime.yaml"
SERVICE = KSERVE / "inferenceservice.yaml"
CANARY = KSERVE / "inferenceservice-canary.yaml"
# the container KServe merges an InferenceService's model spec into
KSERVE_CONTAINER = "kserve-container"
# Knative's port names: HTTP/1.1 and HTTP/2 cleartext
KNATIVE_PORT_NAMES = {"http1", "h2c"}
SDK_TYPES = {("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
             ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService"}


# -- strict reading with the SDK's types ----------------------------------------------------------------

class ManifestError(ValueError):
    """A document that the SDK's type does not describe: the path to the fault, and the fault."""


PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}
LIST = re.compile(r"(?:list|List)\[(.+)\]")
MAP = re.compile(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])")


def read_as(data: Any, type_name: str, where: str = "") -> Any:
    """``data`` (parsed YAML) as an instance of the SDK type ``type_name``; ManifestError if it is not one.

    KServe's own types are OpenAPI classes whose ``attribute_map`` holds the wire names, and whose
    constructors check required fields; their deserialiser ignores unknown keys, so they are checked
    here. The Kubernetes types they refer to (``V1ObjectMeta``, ``V1Container`` ...) are pydantic models
    with strict fields and ``extra="forbid"``, validated as a whole.
    """
    if (match := LIST.fullmatch(type_name)) is not None:
        if not isinstance(data, list):
            raise ManifestError(f"{where}: a list of {match[1]} expected, not {data!r}")
        return [read_as(item, match[1], f"{where}[{i}]") for i, item in enumerate(data)]
    if (match := MAP.fullmatch(type_name)) is not None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: a map expected, not {data!r}")
        return {key: read_as(value, match[1] or match[2], f"{where}.{key}") for key, value in data.items()}
    if type_name == "object":
        return data
    if type_name in PRIMITIVES:
        if not isinstance(data, PRIMITIVES[type_name]) or (type_name != "bool" and isinstance(data, bool)):
            raise ManifestError(f"{where}: {type_name} expected, not {data!r}")
        return data
    klass = getattr(kserve.models, type_name, None)
    if klass is not None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: {type_name} (a map) expected, not {data!r}")
        attribute = {wire: name for name, wire in klass.attribute_map.items()}
        unknown = sorted(set(data) - set(attribute))
        if unknown:
            raise ManifestError(f"{where}: {type_name} has no field {unknown}")
        fields = {attribute[key]: read_as(value, klass.openapi_types[attribute[key]], f"{where}.{key}")
                  for key, value in data.items()}
        try:
            return klass(**fields)
        except ValueError as exc:                       # the SDK's check of a required field
            raise ManifestError(f"{where}: {exc}") from exc
    klass = getattr(kubernetes_client, type_name)
    try:
        return klass.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ManifestError(f"{where}: {exc}") from exc


def read_document(document: dict) -> Any:
    """A whole resource as its SDK type, checked to serialise back to the very same document."""
    type_name = SDK_TYPES.get((document.get("apiVersion"), document.get("kind")))
    if type_name is None:
        raise ManifestError(f"no KServe type for apiVersion/kind {document.get('apiVersion')}/"
                            f"{document.get('kind')}")
    resource = read_as(document, type_name, document["kind"])
    # KServeClient sends what this serialiser makes of the object: every key and value of the manifest
    # must be in it unchanged (a key in snake_case, which the Kubernetes types also accept, comes back in
    # camelCase); the SDK may add its own defaults (V1beta1ModelSpec's name "").
    sent = kserve.ApiClient().sanitize_for_serialization(resource)
    _assert_kept(document, sent, document["kind"])
    return resource


def _assert_kept(written: Any, sent: Any, where: str) -> None:
    if isinstance(written, dict):
        if not isinstance(sent, dict):
            raise ManifestError(f"{where}: the SDK serialises {written!r} as {sent!r}")
        for key, value in written.items():
            if key not in sent:
                raise ManifestError(f"{where}: the SDK serialises it without {key!r}: {sorted(sent)}")
            _assert_kept(value, sent[key], f"{where}.{key}")
    elif isinstance(written, list):
        if not isinstance(sent, list) or len(sent) != len(written):
            raise ManifestError(f"{where}: the SDK serialises {written!r} as {sent!r}")
        for i, (item, sent_item) in enumerate(zip(written, sent, strict=True)):
            _assert_kept(item, sent_item, f"{where}[{i}]")
    elif type(sent) is not type(written) or sent != written:
        raise ManifestError(f"{where}: the SDK serialises {written!r} as {sent!r}")


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def runtime() -> dict:
    (only,) = _documents(RUNTIME)
    return only


@pytest.fixture(scope="module")
def services() -> list[dict]:
    return [d for path in (SERVICE, CANARY) for d in _documents(path)]


@pytest.fixture(scope="module")
def container(runtime) -> dict:
    (only,) = runtime["spec"]["containers"]
    return only


@pytest.mark.parametrize("path", [RUNTIME, SERVICE, CANARY], ids=lambda p: p.name)
def test_every_document_is_the_kserve_sdk_type_of_its_kind(path):
    documents = _documents(path)
    assert documents
    for document in documents:
        read_document(document)


@pytest.mark.parametrize("path, change, fault", [
    (RUNTIME, lambda d: d["spec"].update(protocolVersion=d["spec"].pop("protocolVersions")), "has no field"),
    (RUNTIME, lambda d: d["spec"]["supportedModelFormats"][0].update(autoselect=True), "has no field"),
    (RUNTIME, lambda d: d["spec"]["containers"][0].update(imagePulPolicy="Always"), "imagePulPolicy"),
    (RUNTIME, lambda d: d["spec"]["containers"][0]["ports"][0].update(containerPort="8000"), "integer"),
    (RUNTIME, lambda d: d["spec"]["containers"][0].update(
        image_pull_policy=d["spec"]["containers"][0].pop("imagePullPolicy")), "serialises it without"),
    (RUNTIME, lambda d: d["spec"].pop("containers"), "containers"),
    (SERVICE, lambda d: d["spec"]["predictor"]["model"].update(storageURI="pvc://x/y"), "has no field"),
    (SERVICE, lambda d: d["spec"]["predictor"].update(minReplicas="1"), "int expected"),
    (SERVICE, lambda d: d["spec"]["predictor"]["model"].pop("modelFormat"), "model_format"),
    (SERVICE, lambda d: d.update(apiVersion="serving.kserve.io/v1alpha1"), "no KServe type"),
], ids=["protocolVersion", "autoselect", "imagePulPolicy", "port-as-string", "snake-case",
        "no-containers", "storageURI", "replicas-as-string", "no-modelFormat", "wrong-apiVersion"])
def test_the_strict_reading_rejects_a_broken_manifest(path, change, fault):
    """The check above can fail: each misspelt, mistyped or missing field of a real manifest is an error."""
    (document, *_) = _documents(path)
    broken = copy.deepcopy(document)
    change(broken)
    with pytest.raises(ManifestError, match=re.escape(fault)):
        read_document(broken)


# -- what the resources say ---------------------------------------------------------------------------

def test_runtime_serves_the_v2_protocol_for_the_afrnn_format(runtime):
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    assert runtime["metadata"]["name"] == "afrnn"
    spec = read_document(runtime).spec
    assert "v2" in spec.protocol_versions
    (model_format,) = spec.supported_model_formats
    assert (model_format.name, model_format.version, model_format.auto_select) == ("afrnn", "1", True)


def test_inference_services_name_the_runtime_and_a_format_it_supports(runtime, services):
    supported = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    for service in services:
        assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
        model = read_document(service).spec.predictor.model
        assert model.runtime == runtime["metadata"]["name"]
        assert (model.model_format.name, model.model_format.version) in supported
        assert model.protocol_version in runtime["spec"]["protocolVersions"]
        assert re.fullmatch(r"(pvc|s3|gs)://[^/]+/.+", model.storage_uri), model.storage_uri


def test_container_runs_the_release_image_of_deploy_k8s(container):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    repository, _, tag = container["image"].rpartition(":")
    assert repository.rpartition("/")[2] == "afrnn-serving" and tag == version, container["image"]
    k8s = next(d for d in yaml.safe_load_all((REPO / "deploy" / "k8s.yaml").read_text())
               if d and d["kind"] == "Deployment")
    (k8s_container,) = k8s["spec"]["template"]["spec"]["containers"]
    assert container["image"] == k8s_container["image"], "one image, the same tag, for both deployments"
    assert container["name"] == KSERVE_CONTAINER
    assert "command" not in container and "args" not in container, "the image runs unchanged"


def test_env_vars_are_settings_the_service_accepts(container, services, monkeypatch):
    """The runtime's variables, with each InferenceService's merged over them by name, make valid Settings."""
    fields = {f"AFRNN_{name.upper()}" for name in Settings.model_fields}
    for service in services:
        env = {e["name"]: e for e in container["env"]} | {
            e["name"]: e for e in service["spec"]["predictor"]["model"].get("env", [])}
        settings_env = {name: e for name, e in env.items() if name.startswith("AFRNN_")}
        assert set(settings_env) <= fields, f"unknown settings: {sorted(set(settings_env) - fields)}"
        for name, entry in settings_env.items():
            if "value" in entry:
                monkeypatch.setenv(name, entry["value"])
        settings = Settings(_env_file=None)           # raises pydantic.ValidationError on a bad value
        assert str(settings.model_dir) == "/mnt/models", "KServe puts the storageUri's content there"
        assert settings.host == "0.0.0.0"
        assert settings.health_port is None, "Knative admits one port: the probes use the serving port"
        (port,) = container["ports"]
        assert settings.port == port["containerPort"] and port["name"] in KNATIVE_PORT_NAMES


def test_api_key_comes_from_a_secret(container):
    (entry,) = [e for e in container["env"] if e["name"] == "AFRNN_API_KEY"]
    assert "value" not in entry, "the API key must not be written into the manifest"
    assert set(entry["valueFrom"]["secretKeyRef"]) == {"name", "key"}


@pytest.fixture(scope="module")
def route_table() -> RouteTable:
    from service.app import create_app

    app = create_app(Settings(_env_file=None))        # the routes only: the lifespan (loading) never runs
    return RouteTable.for_app(app)


def test_probes_are_v2_health_routes_that_need_no_key(container, route_table):
    (port,) = container["ports"]
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        action = container[probe]["httpGet"]
        assert action == {"path": path, "port": port["containerPort"]}
        assert route_table.match("GET", action["path"]) == (path, RouteClass.PROBE)


def test_the_route_check_can_fail(route_table):
    assert route_table.match("GET", "/v2/health/readyz") is None
    assert route_table.match("POST", "/v2/models/mnist/infer")[1] is RouteClass.WORK


def test_read_only_root_filesystem_has_a_writable_tmp(runtime, container):
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in runtime["spec"]["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]


def test_autoscaling_target_stays_below_the_admission_limit(services):
    limit = Settings(_env_file=None).max_inflight_requests
    for service in services:
        predictor = service["spec"]["predictor"]
        assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
        if predictor.get("scaleMetric") == "concurrency":
            assert predictor["scaleTarget"] < limit, "a replica must be added before admission refuses"


def test_canary_differs_from_the_base_service_only_in_its_rollout(services):
    base, canary = services
    assert 0 < canary["spec"]["predictor"]["canaryTrafficPercent"] < 100
    assert "canaryTrafficPercent" not in base["spec"]["predictor"]
    assert canary["metadata"] == base["metadata"], "a canary is a new revision of the same resource"
    stripped = copy.deepcopy(canary)
    del stripped["spec"]["predictor"]["canaryTrafficPercent"]
    assert stripped["spec"]["predictor"]["model"].pop("storageUri") != base["spec"]["predictor"]["model"][
        "storageUri"]
    base_without_uri = copy.deepcopy(base)
    del base_without_uri["spec"]["predictor"]["model"]["storageUri"]
    assert stripped == base_without_uri
