"""Signed models against a real server: with ``AFRNN_TRUSTED_KEY`` a version is served only if its
folder's ``model.sig`` verifies against that key, at start and at every repository load; without it,
signatures are reported and nothing is refused. Keys are made here, thrown away with the test."""

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from artifact.signing import key_fingerprint, sign_folder
from tests.service.conftest import API_KEY, export_tiny

ADMIN_KEY = "admin-signing-key"


def key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub.pem"
    private_path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def version(root: Path, name: str, number: int, seed: int, key: Path | None) -> Path:
    folder = root / name / str(number)
    folder.mkdir(parents=True)
    export_tiny(folder, "mnist", name=name, seed=seed)
    if key is not None:
        sign_folder(folder, key)
    return folder


def replace_artifact_and_rewrite_hash(folder: Path, name: str, seed: int) -> None:
    """The attack a SHA-256 in the manifest cannot stop: another (valid) model, and its hash written
    into the manifest."""
    other = folder.parent / "attacker"
    other.mkdir()
    export_tiny(other, "mnist", name=name, seed=seed)
    shutil.copy(other / f"{name}.pt", folder / f"{name}.pt")
    manifest = json.loads((folder / f"{name}.json").read_text())
    manifest["artifact"] = json.loads((other / f"{name}.json").read_text())["artifact"]
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    shutil.rmtree(other)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {"trusted": key_pair(folder, "trusted"), "other": key_pair(folder, "other")}


@pytest.fixture(scope="module")
def repository(tmp_path_factory, keys):
    root = tmp_path_factory.mktemp("signed-repository")
    trusted, other = keys["trusted"][0], keys["other"][0]
    version(root, "good", 1, seed=1, key=trusted)
    version(root, "unsigned", 1, seed=2, key=None)
    version(root, "foreign", 1, seed=3, key=other)
    extra = version(root, "extra", 1, seed=4, key=trusted)
    (extra / "notes.txt").write_text("added after signing")
    replace_artifact_and_rewrite_hash(version(root, "swapped", 1, seed=5, key=trusted), "swapped", seed=6)
    export_tiny(root, "mnist", name="flat", seed=7)                      # flat layout
    return root


@pytest.fixture(scope="module")
def enforcing(repository, keys, start_service):
    return start_service(repository, "--readiness-policy", "any", api_key=API_KEY, env={
        "AFRNN_TRUSTED_KEY": str(keys["trusted"][1]), "AFRNN_MODEL_CONTROL": "explicit",
        "AFRNN_ADMIN_KEY": ADMIN_KEY})


def _models(server) -> dict[str, dict]:
    with server.client() as c:
        return {m["name"]: m for m in c.get("/models").json()["models"]}


def test_at_start_only_what_the_trusted_key_signed_is_served(enforcing, keys, read_metric):
    models = _models(enforcing)
    good = models["good"]
    assert good["status"] == "ready"
    assert good["signature"]["verified"] is True
    assert good["signature"]["key_fingerprint"] == key_fingerprint(keys["trusted"][1])
    expected = {"unsigned": "unsigned", "foreign": "wrong_key", "extra": "mismatch", "swapped": "mismatch",
                "flat": "flat_layout"}
    for name, reason in expected.items():
        assert models[name]["status"] == "unavailable", name
        assert f"({reason})" in models[name]["reason"], (name, models[name]["reason"])
    with enforcing.client() as c:
        metrics = c.get("/metrics").text
        assert c.post("/classify", json={"model": "swapped", "pixels": [0] * 784, "scale": 255}
                      ).status_code == 503
        meta = c.get("/v2/models/good").json()
    assert meta["parameters"]["signature_verified"] is True
    for reason in ("unsigned", "wrong_key", "mismatch", "flat_layout"):
        assert read_metric(metrics, "afrnn_model_signature_refusals_total", {"reason": reason}) >= 1
    assert "refused (mismatch)" in enforcing.log()


def test_a_load_of_a_tampered_version_leaves_the_signed_one_serving(enforcing, repository, keys):
    tampered = version(repository, "good", 2, seed=8, key=keys["trusted"][0])
    replace_artifact_and_rewrite_hash(tampered, "good", seed=9)
    with enforcing.client(api_key=ADMIN_KEY) as admin:
        r = admin.post("/v2/repository/models/good/load")
        assert r.status_code == 400
        assert "version 2" in r.json()["error"] and "mismatch" in r.json()["error"]
        assert r.json()["serving_version"] == "1"
        index = {(e["name"], e["version"]): e for e in admin.post("/v2/repository/index").json()}
        assert index[("good", "2")]["state"] == "UNAVAILABLE"
        # signed properly, the same version number loads
        shutil.rmtree(tampered)
        version(repository, "good", 2, seed=8, key=keys["trusted"][0])
        r = admin.post("/v2/repository/models/good/load")
        assert r.status_code == 200 and r.json()["serving_version"] == "2", r.text


def test_without_a_trusted_key_signatures_are_reported_not_enforced(repository, start_service):
    server = start_service(repository, "--readiness-policy", "any", api_key=API_KEY)
    models = _models(server)
    for name in ("unsigned", "foreign", "extra", "flat", "good"):
        assert models[name]["status"] == "ready", (name, models[name]["reason"])
    assert models["unsigned"]["signature"]["signed"] is False
    assert models["foreign"]["signature"]["signed"] is True
    assert models["foreign"]["signature"]["verified"] is False
    # the SHA-256 still guards the artifact itself; the attack that rewrites it too is not caught here
    assert models["swapped"]["status"] == "ready"


def test_an_unreadable_trusted_key_stops_the_start(repository, start_service, tmp_path):
    proc = start_service(repository, api_key=API_KEY, wait=False,
                         env={"AFRNN_TRUSTED_KEY": str(tmp_path / "missing.pem")})
    assert proc.proc.wait(timeout=60) != 0
