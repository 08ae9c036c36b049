"""artifact.signing: a version folder signed as one unit, verified against a trusted key or CA chain,
refused with the right reason for each way it can go wrong.

Every folder holds a copy of a shipped checkpoint (the real artifact format); keys and certificates are
made here and thrown away. Oracles: the PEM body of a public key is its DER SubjectPublicKeyInfo
(base64), so its SHA-256 is the fingerprint; ``load_exported`` shows what the manifest's SHA-256 alone
lets through; the refusal reasons of the library's own exceptions are obtained by calling
``model_signing`` directly.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from artifact.export import load_exported, sha256_of
from artifact.signing import (
    SIGNATURE_FILE,
    SignatureRefused,
    _refusal,
    folder_label,
    is_version_folder,
    key_fingerprint,
    sign_folder,
    signature_status,
    verify_folder,
)
from tests.artifact.conftest import (
    CHECKPOINTS,
    make_version_folder,
    write_certificate_authority,
    write_key_pair,
)


def pem_body_sha256(pem: Path) -> str:
    """SHA-256 of the DER bytes inside a PEM file (its base64 body): the fingerprint, computed without
    parsing the key."""
    lines = pem.read_text().strip().splitlines()
    return hashlib.sha256(base64.b64decode("".join(lines[1:-1]))).hexdigest()


def refused(folder: Path, trusted: Path, **kwargs) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as info:
        verify_folder(folder, trusted, **kwargs)
    return info.value


def test_signed_folder_verifies_with_the_trusted_keys_fingerprint(version_folder, keys):
    private, public = keys
    signature = sign_folder(version_folder, private)
    assert signature == (version_folder / SIGNATURE_FILE).resolve() and signature.is_file()
    status = verify_folder(version_folder, public)
    assert status.signed and status.verified
    assert status.key_fingerprint == key_fingerprint(public) == pem_body_sha256(public)
    assert "2 files" in status.detail
    assert not (version_folder / (SIGNATURE_FILE + ".tmp")).exists()


def test_replaced_artifact_with_rewritten_manifest_passes_sha256_but_is_refused(version_folder, keys):
    """The attack the manifest's SHA-256 cannot stop: another valid TorchScript model in place of the
    artifact, and the manifest's checksum and size rewritten to match it."""
    private, public = keys
    sign_folder(version_folder, private)
    artifact, manifest_path = version_folder / "mnist.pt", version_folder / "mnist.json"
    shutil.copyfile(CHECKPOINTS / "mnist-frnn.pt", artifact)        # a different, valid model
    manifest = json.loads(manifest_path.read_text())
    manifest["artifact"].update(sha256=sha256_of(artifact), bytes=artifact.stat().st_size)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    module, _ = load_exported(manifest_path)       # the SHA-256 check alone lets it through
    assert module is not None
    error = refused(version_folder, public)
    assert error.reason == "mismatch"
    assert "changed mnist.json, mnist.pt" in str(error)


def test_unsigned_folder_is_refused(version_folder, keys):
    assert refused(version_folder, keys[1]).reason == "unsigned"


def test_missing_folder_is_unsigned(tmp_path, keys):
    assert refused(tmp_path / "models" / "mnist" / "4", keys[1]).reason == "unsigned"


def test_folder_signed_by_another_key_is_refused(version_folder, keys, other_keys):
    sign_folder(version_folder, other_keys[0])
    assert refused(version_folder, keys[1]).reason == "wrong_key"
    assert verify_folder(version_folder, other_keys[1]).verified


@pytest.mark.parametrize("change, expected", [
    (lambda f: (f / "extra.pt").write_bytes(b"x"), "added extra.pt"),
    (lambda f: (f / ".hidden").write_text("x"), "added .hidden"),
    (lambda f: (f / ".gitignore").write_text("*\n"), "added .gitignore"),   # nothing is ignored but model.sig
    (lambda f: ((f / "sub").mkdir(), (f / "sub" / "a.json").write_text("{}")), "added sub/a.json"),
    (lambda f: (f / "mnist.json").unlink(), "removed mnist.json"),
    (lambda f: (f / "mnist.pt").write_bytes((f / "mnist.pt").read_bytes() + b"\0"), "changed mnist.pt"),
], ids=["extra file", "hidden file", "git file", "subfolder file", "removed file", "appended byte"])
def test_any_change_after_signing_is_a_mismatch(version_folder, keys, change, expected):
    sign_folder(version_folder, keys[0])
    change(version_folder)
    error = refused(version_folder, keys[1])
    assert error.reason == "mismatch"
    assert str(error).endswith(expected)


def test_signed_folder_moved_to_another_version_number_is_a_mismatch(version_folder, keys):
    sign_folder(version_folder, keys[0])
    renumbered = version_folder.parent / "2"
    shutil.copytree(version_folder, renumbered)
    assert verify_folder(version_folder, keys[1]).verified
    error = refused(renumbered, keys[1])
    assert error.reason == "mismatch" and "signed as folder '1'" in str(error)


def test_flat_layout_is_refused_before_looking_at_files(tmp_path, keys):
    error = refused(CHECKPOINTS, keys[1], flat_layout=True)
    assert error.reason == "flat_layout"
    assert str(error).startswith("model version checkpoints refused (flat_layout)")


def test_refusal_names_the_folder_not_its_absolute_path(version_folder, keys):
    error = refused(version_folder, keys[1])
    message = str(error)
    assert "mnist/1" in message and str(version_folder.parent) not in message
    assert "\n" not in message and error.folder == "mnist/1"


@pytest.mark.parametrize("garbage", [b"not json", b"[]", b'{"mediaType": "x"}', b"\xff\xfe"])
def test_malformed_signature_is_invalid(version_folder, keys, garbage):
    (version_folder / SIGNATURE_FILE).write_bytes(garbage)
    assert refused(version_folder, keys[1]).reason == "invalid_signature"


def _edit_bundle(folder: Path, edit) -> None:
    path = folder / SIGNATURE_FILE
    bundle = json.loads(path.read_text())
    edit(bundle)
    path.write_text(json.dumps(bundle))


def _flip_signature_byte(bundle: dict) -> None:
    signature = bundle["dsseEnvelope"]["signatures"][0]
    raw = bytearray(base64.b64decode(signature["sig"]))
    raw[-1] ^= 1
    signature["sig"] = base64.b64encode(bytes(raw)).decode()


def _rewrite_signed_digest(bundle: dict) -> None:
    """What an attacker would do: make the signed statement list the replaced file's digest."""
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


@pytest.mark.parametrize("edit", [
    _flip_signature_byte,
    _rewrite_signed_digest,
    lambda b: b.update(mediaType="application/json"),
    lambda b: b["verificationMaterial"]["publicKey"].pop("hint"),
    lambda b: b["verificationMaterial"].pop("publicKey"),
], ids=["signature byte", "signed statement", "media type", "no key hint", "no key"])
def test_altered_signature_is_invalid(version_folder, keys, edit):
    sign_folder(version_folder, keys[0])
    _edit_bundle(version_folder, edit)
    assert refused(version_folder, keys[1]).reason == "invalid_signature"


def test_signature_status_without_a_key_reports_and_never_raises(version_folder, keys, tmp_path):
    unsigned = signature_status(version_folder)
    assert (unsigned.signed, unsigned.verified, unsigned.key_fingerprint) == (False, False, None)
    sign_folder(version_folder, keys[0])
    signed = signature_status(version_folder)
    assert (signed.signed, signed.verified, signed.key_fingerprint) == (True, False, None)
    assert "not verified" in signed.detail
    (version_folder / SIGNATURE_FILE).write_bytes(b"\x00garbage")
    assert signature_status(version_folder).signed
    assert not signature_status(tmp_path / "nowhere").signed
    (tmp_path / "a-file").write_text("x")
    assert not signature_status(tmp_path / "a-file").signed


def test_resigning_replaces_the_signature(version_folder, keys, other_keys):
    sign_folder(version_folder, other_keys[0])
    (version_folder / "notes.txt").write_text("added before re-signing")
    (version_folder / (SIGNATURE_FILE + ".tmp")).write_text("left by an interrupted run")
    sign_folder(version_folder, keys[0])
    assert verify_folder(version_folder, keys[1]).verified
    assert refused(version_folder, other_keys[1]).reason == "wrong_key"


def test_password_protected_key(version_folder, tmp_path):
    private, public = write_key_pair(tmp_path / "locked", password=b"correct horse")
    with pytest.raises(ValueError):
        sign_folder(version_folder, private)
    with pytest.raises(ValueError):
        sign_folder(version_folder, private, password=b"wrong")
    assert not (version_folder / SIGNATURE_FILE).exists()
    sign_folder(version_folder, private, password=b"correct horse")
    assert verify_folder(version_folder, public).verified


def test_certificate_chain(version_folder, tmp_path, keys):
    ours = write_certificate_authority(tmp_path / "pki", "ours")
    theirs = write_certificate_authority(tmp_path / "pki", "theirs")
    sign_folder(version_folder, ours["leaf_key"], signing_certificate=ours["leaf"],
                certificate_chain=[ours["ca"]])
    status = verify_folder(version_folder, ours["ca"])
    assert status.verified and status.key_fingerprint == pem_body_sha256(ours["leaf_public"])
    assert "ours model signer" in status.detail
    assert refused(version_folder, theirs["ca"]).reason == "wrong_key"       # does not chain to it
    assert refused(version_folder, keys[1]).reason == "wrong_key"            # a bare key is trusted
    (version_folder / "extra").write_text("x")
    assert refused(version_folder, ours["ca"]).reason == "mismatch"
    (version_folder / "extra").unlink()
    sign_folder(version_folder, keys[0])                                     # a bare key signs
    assert refused(version_folder, ours["ca"]).reason == "wrong_key"


def test_signing_refuses_what_it_cannot_cover(version_folder, keys, tmp_path):
    with pytest.raises(NotADirectoryError):
        sign_folder(version_folder / "mnist.pt", keys[0])
    (version_folder / "link.pt").symlink_to(version_folder / "mnist.pt")
    with pytest.raises(ValueError, match="symlink"):
        sign_folder(version_folder, keys[0])


def test_symlink_added_after_signing_is_a_mismatch(version_folder, keys):
    sign_folder(version_folder, keys[0])
    (version_folder / "link.pt").symlink_to(version_folder / "mnist.pt")
    assert refused(version_folder, keys[1]).reason == "mismatch"


# The library's own exceptions, each mapped to its reason (a library update that changes a type or a
# message fails here rather than silently becoming "invalid_signature").

def _library_error(folder: Path, trusted: Path) -> Exception:
    from model_signing import verifying

    config = verifying.Config()
    if b"CERTIFICATE" in trusted.read_bytes():
        config.use_certificate_verifier(certificate_chain=[trusted])
    else:
        config.use_elliptic_key_verifier(public_key=trusted)
    with pytest.raises(Exception) as info:    # noqa: B017 - whatever the library raises is the subject
        config.verify(folder, folder / SIGNATURE_FILE)
    return info.value


def test_library_exceptions_map_to_reasons(tmp_path, keys, other_keys):
    def reason(folder, trusted):
        return _refusal(_library_error(folder, trusted), folder).reason

    wrong = make_version_folder(tmp_path / "a")
    sign_folder(wrong, other_keys[0])
    assert reason(wrong, keys[1]) == "wrong_key"                      # "Key mismatch: ..."

    changed = make_version_folder(tmp_path / "b")
    sign_folder(changed, keys[0])
    (changed / "mnist.json").write_text("{}")
    assert reason(changed, keys[1]) == "mismatch"                     # "Signature mismatch: ..."

    forged = make_version_folder(tmp_path / "c")
    sign_folder(forged, keys[0])
    _edit_bundle(forged, _flip_signature_byte)
    assert reason(forged, keys[1]) == "invalid_signature"             # cryptography's InvalidSignature

    media = make_version_folder(tmp_path / "d")
    sign_folder(media, keys[0])
    _edit_bundle(media, lambda b: b.update(mediaType="x"))
    assert reason(media, keys[1]) == "invalid_signature"              # "Invalid sigstore bundle ..."

    linked = make_version_folder(tmp_path / "e")
    sign_folder(linked, keys[0])
    (linked / "link").symlink_to(linked / "mnist.pt")
    assert reason(linked, keys[1]) == "mismatch"                      # "Cannot use ... symlink"

    pki = write_certificate_authority(tmp_path / "pki", "ours")
    other_ca = write_certificate_authority(tmp_path / "pki", "theirs")["ca"]
    chained = make_version_folder(tmp_path / "f")
    sign_folder(chained, pki["leaf_key"], signing_certificate=pki["leaf"], certificate_chain=[pki["ca"]])
    assert reason(chained, other_ca) == "wrong_key"                   # OpenSSL's X509StoreContextError


def test_key_fingerprint_of_a_certificate_is_its_keys(tmp_path):
    pki = write_certificate_authority(tmp_path, "ours")
    assert key_fingerprint(pki["leaf"]) == key_fingerprint(pki["leaf_public"])
    assert key_fingerprint(pki["leaf_public"]) == pem_body_sha256(pki["leaf_public"])


def test_a_trusted_key_that_is_not_a_public_key_is_a_configuration_error(version_folder, keys):
    sign_folder(version_folder, keys[0])
    with pytest.raises(ValueError):
        verify_folder(version_folder, keys[0])          # the private key where the public one belongs
    with pytest.raises(OSError):
        verify_folder(version_folder, version_folder / "absent.pem")


def test_folder_names(tmp_path):
    assert folder_label(tmp_path / "mnist" / "3") == "mnist/3"
    assert folder_label(tmp_path / "checkpoints") == "checkpoints"
    assert is_version_folder(tmp_path / "mnist" / "3", "mnist")
    assert not is_version_folder(tmp_path / "mnist" / "03", "mnist")
    assert not is_version_folder(tmp_path / "mnist" / "0", "mnist")
    assert not is_version_folder(tmp_path / "other" / "3", "mnist")
    assert not is_version_folder(tmp_path / "checkpoints", "mnist")


def test_importing_the_module_loads_neither_model_signing_nor_cryptography():
    code = ("import sys, artifact.signing; "
            "print(sorted(m for m in ('model_signing', 'cryptography', 'OpenSSL', 'sigstore', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
