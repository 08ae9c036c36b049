"""Signed model versions: one OpenSSF Model Signing signature (``model_signing``) over a whole version
folder ``<name>/<version>/``, written as ``model.sig`` into that folder.

Why: a TorchScript file is code, and the manifest's SHA-256 (``artifact.export.load_exported``) catches
a corrupted artifact but not someone who replaces the artifact *and* rewrites the manifest. The
signature ties every file of the folder to a key the server trusts.

What is signed: an in-toto statement listing every file of the folder (path relative to it, SHA-256)
except ``model.sig`` itself, in a DSSE envelope inside a Sigstore bundle, signed with an EC private key
(P-256, P-384 or P-521), or with a key whose certificate chains to a CA the server trusts. Nothing else
is left out: hidden files and git files are covered too. The statement's subject is the folder's name,
its version number: a signed folder copied under another version number is refused ("mismatch"), so a
signed old version cannot be replayed as a new one; re-sign a version after renumbering it.

``verify_folder`` refuses with one of five reasons (``SignatureRefused.reason``):

* ``flat_layout``: the model lives in a flat model directory, side by side with other models; there is
  no folder that holds this model alone, so there is nothing to sign as a unit;
* ``unsigned``: the folder holds no ``model.sig``;
* ``wrong_key``: signed, but not by the trusted key (or, with a trusted certificate chain, by a
  certificate that does not chain to it, or a bare key);
* ``mismatch``: a file was changed, added or removed after signing, or the folder was renumbered;
* ``invalid_signature``: ``model.sig`` is malformed, or names the trusted key but its signature does
  not verify (an altered statement or signature).

A missing or unreadable *trusted key* is a configuration error, not a refusal: ``OSError`` or
``ValueError``, as is an I/O error while hashing the folder (``OSError``).

``model_signing`` (and the sigstore packages it loads) and ``cryptography`` are imported inside the
functions: importing this module costs the standard library only.
"""

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SIGNATURE_FILE = "model.sig"
RefusalReason = Literal["unsigned", "wrong_key", "mismatch", "flat_layout", "invalid_signature"]

# A version folder's name: a positive integer without leading zeros (Triton's model repository layout)
VERSION_NAME = re.compile(r"[1-9][0-9]*")
_CERTIFICATE_PEM = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class SignatureStatus:
    signed: bool                       # a model.sig is present
    verified: bool                     # it verified against the trusted key
    key_fingerprint: str | None        # SHA-256 hex of the signing public key's DER SubjectPublicKeyInfo,
    #                                    when verified (certificate chain: the signing certificate's key)
    detail: str                        # one line for humans


class SignatureRefused(Exception):
    """A version folder that the trusted key does not vouch for; ``reason`` says why, ``str(exc)`` is one
    line naming the folder as ``<name>/<version>`` (never its absolute path) and the cause."""

    def __init__(self, reason: RefusalReason, folder: Path, cause: str):
        self.reason: RefusalReason = reason
        self.folder = folder_label(folder)
        super().__init__(f"model version {self.folder} refused ({reason}): {' '.join(cause.split())}")


def folder_label(folder: Path) -> str:
    """``<name>/<version>`` for a version folder, else the folder's own name: for messages and logs."""
    folder = Path(folder)
    if VERSION_NAME.fullmatch(folder.name) and folder.parent.name:
        return f"{folder.parent.name}/{folder.name}"
    return folder.name or str(folder)


def is_version_folder(folder: Path, name: str) -> bool:
    """Whether ``folder`` is ``…/<name>/<version>`` with a positive integer version."""
    folder = Path(folder).absolute()
    return bool(VERSION_NAME.fullmatch(folder.name)) and folder.parent.name == name


def _public_key_of(pem: bytes):
    """The public key of a PEM public key, or of the first certificate of a PEM certificate (chain)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if _CERTIFICATE_PEM in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


def _fingerprint(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_fingerprint(public_key_pem: Path) -> str:
    """SHA-256 hex of the DER SubjectPublicKeyInfo of a PEM public key (of a PEM certificate: of its
    key), the same as ``openssl pkey -pubin -in KEY.pem -outform DER | sha256sum``."""
    return _fingerprint(_public_key_of(Path(public_key_pem).read_bytes()))


def check_signing_key(private_key: Path, password: bytes | None = None) -> str:
    """Load an EC private key as ``sign_folder`` will; return its public key's fingerprint. Raises
    ``ValueError`` (wrong or missing password, not an EC key of a supported curve) or ``OSError``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = Path(private_key).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as err:     # TypeError: password given or missing where it must not be
        raise ValueError(f"{Path(private_key).name}: cannot load the private key: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in (
            "secp256r1", "secp384r1", "secp521r1"):
        raise ValueError(f"{Path(private_key).name}: not an EC private key on P-256, P-384 or P-521 "
                         f"(model signing supports those)")
    return _fingerprint(key.public_key())


def _hashing_config():
    """Every file of the folder, SHA-256 each, but ``model.sig``: the same at signing and verification."""
    from model_signing import hashing

    return (hashing.Config().use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
            .set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False))


def sign_folder(folder: Path, private_key: Path, *, password: bytes | None = None,
                certificate_chain: Sequence[Path] = (), signing_certificate: Path | None = None) -> Path:
    """Write ``folder/model.sig``, a signature over exactly the folder's files (``model.sig`` excluded);
    return its path. With ``signing_certificate`` (and the ``certificate_chain`` up to the CA), the
    bundle carries the certificates and verifies against a trusted CA chain; a password-protected key
    cannot be combined with a certificate (``model_signing`` 1.1.1 takes no password there).

    Raises ``NotADirectoryError``, ``ValueError`` (an unusable key; a symlink or special file in the
    folder) or ``OSError``."""
    folder = Path(folder).resolve()          # the statement's subject is the folder's own name
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder_label(folder)}: not a folder")
    if certificate_chain and signing_certificate is None:
        raise ValueError("a certificate chain needs its signing certificate (signing_certificate)")
    if signing_certificate is not None and password is not None:
        raise ValueError("model_signing signs with a certificate only with an unencrypted private key")
    check_signing_key(private_key, password)

    from model_signing import signing

    config = signing.Config().set_hashing_config(_hashing_config())
    if signing_certificate is not None:
        config.use_certificate_signer(private_key=Path(private_key),
                                      signing_certificate=Path(signing_certificate),
                                      certificate_chain=[Path(p) for p in certificate_chain])
    else:
        config.use_elliptic_key_signer(private_key=Path(private_key), password=password)
    signature = folder / SIGNATURE_FILE
    partial = folder / (SIGNATURE_FILE + ".tmp")
    partial.unlink(missing_ok=True)          # a stale one would be hashed and signed
    config.sign(folder, partial)             # hashes the folder first, then writes the bundle
    partial.replace(signature)
    return signature


def _read_bundle(signature: Path, folder: Path) -> dict[str, Any]:
    try:
        bundle = json.loads(signature.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise SignatureRefused("invalid_signature", folder, f"{SIGNATURE_FILE} is not JSON ({err})") from None
    if not isinstance(bundle, dict) or not isinstance(bundle.get("verificationMaterial"), dict):
        raise SignatureRefused("invalid_signature", folder,
                               f"{SIGNATURE_FILE} is not a Sigstore bundle (no verification material)")
    return bundle


def _pem_hint(public_key) -> str:
    """What a ``model_signing`` bundle records of its key: SHA-256 hex of the key's PEM SPKI text."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _check_signer_named(bundle: dict[str, Any], trusted_pem: bytes, folder: Path) -> None:
    """Refuse before any cryptography when the bundle names another kind of signer or another key."""
    material = bundle["verificationMaterial"]
    if _CERTIFICATE_PEM in trusted_pem:
        if not material.get("x509CertificateChain"):
            raise SignatureRefused("wrong_key", folder, "signed with a bare key, but the trusted key is "
                                                        "a certificate chain: sign with a certificate of "
                                                        "that CA")
        return
    public_key = material.get("publicKey")
    if not isinstance(public_key, dict):
        if material.get("x509CertificateChain"):
            raise SignatureRefused("wrong_key", folder, "signed with a certificate, but the trusted key is a "
                                                        "bare public key: trust the CA's certificate chain")
        raise SignatureRefused("invalid_signature", folder, f"{SIGNATURE_FILE} names no signing key")
    hint = public_key.get("hint")
    if not hint:
        raise SignatureRefused("invalid_signature", folder,
                               f"{SIGNATURE_FILE} does not name its key (a format from before model_signing "
                               f"1.0): re-sign the folder")
    if hint != _pem_hint(_public_key_of(trusted_pem)):
        raise SignatureRefused("wrong_key", folder, "signed by another key than the trusted one")


def _refusal(err: Exception, folder: Path) -> SignatureRefused:
    """The reason for an exception of ``model_signing``'s verification (types first, then messages)."""
    from cryptography.exceptions import InvalidSignature

    try:
        from OpenSSL.crypto import X509StoreContextError
    except ImportError:                      # pragma: no cover - model_signing needs it for certificates
        X509StoreContextError = ()           # noqa: N806
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, InvalidSignature):
        return SignatureRefused("invalid_signature", folder,
                                "the signature does not verify with the trusted key (altered statement "
                                "or signature)")
    if X509StoreContextError and isinstance(err, X509StoreContextError):
        return SignatureRefused("wrong_key", folder,
                                f"the signing certificate does not chain to the trusted CA ({message})")
    if message.startswith("Signature mismatch"):
        return SignatureRefused("mismatch", folder, "the folder's files differ from the signed ones")
    if message.startswith("Key mismatch"):
        return SignatureRefused("wrong_key", folder, "signed by another key than the trusted one")
    if "cannot be used for signing" in message:
        return SignatureRefused("wrong_key", folder, "the signing certificate is not for signing (key usage)")
    if "symlink" in message or message.startswith("Cannot use"):
        return SignatureRefused("mismatch", folder, "the folder holds a symlink or special file, which a "
                                                    "signature cannot cover")
    return SignatureRefused("invalid_signature", folder, f"malformed {SIGNATURE_FILE} ({message})")


def _signed_statement(bundle: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def _difference(folder: Path, statement: dict[str, Any]) -> str:
    """Which files changed, were added or were removed since signing (the statement is authenticated:
    the library compares files only after the signature verified)."""
    signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    present = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    present.pop(SIGNATURE_FILE, None)
    parts = []
    for label, names in (("changed", sorted(n for n in signed.keys() & present.keys()
                                            if _sha256_file(present[n]) != signed[n])),
                         ("added", sorted(present.keys() - signed.keys())),
                         ("removed", sorted(signed.keys() - present.keys()))):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return "; ".join(parts) or "the files changed while being checked"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _signing_certificate(bundle: dict[str, Any]):
    from cryptography import x509

    raw = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]
    return x509.load_der_x509_certificate(base64.b64decode(raw))


def verify_folder(folder: Path, trusted_key: Path, *, flat_layout: bool = False) -> SignatureStatus:
    """Verify ``folder/model.sig`` against ``trusted_key`` (a PEM EC public key, or a PEM certificate
    chain of the trusted CA) and the folder's current files; raise ``SignatureRefused`` otherwise.

    ``flat_layout=True`` says the model is served from a flat model directory: refused at once
    ("flat_layout"), since no folder holds it alone."""
    folder = Path(folder)
    if flat_layout:
        raise SignatureRefused("flat_layout", folder,
                               "a flat model directory holds several models side by side, so no folder "
                               "covers this one alone: serve it from <name>/<version>/ and sign that folder")
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise SignatureRefused("unsigned", folder, f"no {SIGNATURE_FILE} in the folder")
    trusted_pem = Path(trusted_key).read_bytes()
    chain = _CERTIFICATE_PEM in trusted_pem

    from model_signing import verifying

    config = verifying.Config().set_hashing_config(_hashing_config())
    if chain:   # the CA the signing certificates must chain to
        config.use_certificate_verifier(certificate_chain=[Path(trusted_key)])
    else:       # raises ValueError for a file that is not an EC public key: a configuration error
        config.use_elliptic_key_verifier(public_key=Path(trusted_key))

    bundle = _read_bundle(signature, folder)
    _check_signer_named(bundle, trusted_pem, folder)
    try:
        config.verify(folder, signature)
        statement = _signed_statement(bundle)
        signed_name = statement["subject"][0]["name"]
        files = len(statement["predicate"]["resources"])
        signer = _signing_certificate(bundle) if chain else None
    except OSError:
        raise
    except Exception as err:     # noqa: BLE001 - mapped to a reason by type and message, never swallowed
        refusal = _refusal(err, folder)
        if refusal.reason == "mismatch" and not refusal.args[0].endswith("cannot cover"):
            refusal = SignatureRefused("mismatch", folder, "the folder's files differ from the signed ones: "
                                       + _difference(folder, _signed_statement(bundle)))
        raise refusal from err
    here = folder.resolve().name
    if signed_name != here:
        raise SignatureRefused("mismatch", folder, f"signed as folder '{signed_name}', found as '{here}': a "
                                                   f"version moved to another number must be re-signed")
    if signer is None:
        fingerprint, who = _fingerprint(_public_key_of(trusted_pem)), "the trusted key"
    else:
        fingerprint = _fingerprint(signer.public_key())
        who = f"certificate '{signer.subject.rfc4514_string()}'"
    return SignatureStatus(signed=True, verified=True, key_fingerprint=fingerprint,
                           detail=f"signature verified: {files} files signed by {who} "
                                  f"(SHA-256 {fingerprint[:16]}…)")


def signature_status(folder: Path) -> SignatureStatus:
    """Whether ``folder`` holds a ``model.sig``, without a trusted key to check it against; never raises."""
    try:
        signature = Path(folder) / SIGNATURE_FILE
        if not signature.is_file():
            return SignatureStatus(False, False, None, f"unsigned: no {SIGNATURE_FILE}")
        try:
            material = json.loads(signature.read_bytes())["verificationMaterial"]
            kind = "a certificate" if material.get("x509CertificateChain") else "a key"
            what = f"signed with {kind}"
        except Exception:        # noqa: BLE001 - reported, not raised: nothing is trusted here
            what = f"{SIGNATURE_FILE} present but unreadable"
        return SignatureStatus(True, False, None, f"{what}; not verified (no trusted key)")
    except Exception as err:     # noqa: BLE001 - a status report never raises
        return SignatureStatus(False, False, None, f"signature state unknown: {type(err).__name__}: {err}")
