"""Fixtures for the signing tests: throwaway EC keys, a small CA, and version folders holding a shipped
checkpoint (``checkpoints/mnist.pt`` + ``mnist.json``, copied: the real artifact format, a few hundred KB)."""

import datetime
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def write_key_pair(directory: Path, stem: str = "key", password: bytes | None = None) -> tuple[Path, Path]:
    """``<stem>.private.pem`` (PKCS #8) and ``<stem>.public.pem`` of a new EC P-256 key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    private = directory / f"{stem}.private.pem"
    public = directory / f"{stem}.public.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          encryption))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def _certificate(subject: str, public_key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False,
                                            key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


def write_certificate_authority(directory: Path, name: str) -> dict[str, Path]:
    """A self-signed CA and a signing certificate it issued: ``ca`` (PEM), ``leaf`` (PEM),
    ``leaf_key`` (unencrypted PEM private key) and ``leaf_public`` (PEM public key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(f"{name} CA", ca_key.public_key(), f"{name} CA", ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(f"{name} model signer", leaf_key.public_key(), f"{name} CA", ca_key, ca=False)
    paths = {"ca": directory / f"{name}-ca.pem", "leaf": directory / f"{name}-leaf.pem",
             "leaf_key": directory / f"{name}-leaf.key.pem",
             "leaf_public": directory / f"{name}-leaf.pub.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["leaf"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["leaf_key"].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    paths["leaf_public"].write_bytes(leaf_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return paths


def make_version_folder(root: Path, name: str = "mnist", version: int = 1) -> Path:
    """``root/<name>/<version>/`` with a copy of the shipped ``<name>.pt`` and ``<name>.json``."""
    folder = root / name / str(version)
    folder.mkdir(parents=True)
    for suffix in (".pt", ".json"):
        shutil.copy2(CHECKPOINTS / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder


@pytest.fixture
def keys(tmp_path) -> tuple[Path, Path]:
    """(private, public) PEM paths of a throwaway EC P-256 key."""
    return write_key_pair(tmp_path / "keys", "trusted")


@pytest.fixture
def other_keys(tmp_path) -> tuple[Path, Path]:
    return write_key_pair(tmp_path / "keys", "other")


@pytest.fixture
def version_folder(tmp_path) -> Path:
    return make_version_folder(tmp_path / "models")
