"""``afrnn-sign``: sign a model version folder ``<name>/<version>/`` as one unit (``model.sig``), verify
one, or make a key pair to try it out.

    afrnn-sign models/mnist/3 --key signing-key.pem [--password-env VAR]
    afrnn-sign models/mnist/3 --key leaf-key.pem --signing-certificate leaf.pem --certificate-chain ca.pem
    afrnn-sign --verify models/mnist/3 --trusted-key trusted.pem
    afrnn-sign --keygen DIR

Exit status: 0 done (signed, verified, keys written); 1 verification refused (the reason is printed);
2 a usage error (bad arguments, an unusable key, a missing password variable, a file in the way).
"""

import argparse
import os
import sys
from pathlib import Path

from artifact.signing import (
    SIGNATURE_FILE,
    SignatureRefused,
    folder_label,
    key_fingerprint,
    sign_folder,
    verify_folder,
)

PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "trusted.pem"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afrnn-sign", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[0].replace("``", "").replace("\n", " "),
        epilog=("A signature covers every file of the folder but model.sig, and the folder's name (its\n"
                "version number): re-sign a version after changing, adding or removing a file, or\n"
                "renumbering it.\n"
                "Production keys come from your KMS or CI secret store: --keygen writes an unprotected\n"
                "key pair on disk for trying signing out. The private key never enters the repository or\n"
                "the image (.gitignore and .dockerignore exclude *.pem and *.key). docs/signing.md has the\n"
                "CI step, the Kubernetes mount of the trusted key and what each refusal means."))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("folder", nargs="?", type=Path, help="the version folder to sign (<name>/<version>/)")
    mode.add_argument("--verify", type=Path, metavar="FOLDER", help="verify FOLDER's model.sig")
    mode.add_argument("--keygen", type=Path, metavar="DIR",
                      help=f"write an EC P-256 key pair, DIR/{PRIVATE_KEY_FILE} (mode 0600) and "
                           f"DIR/{PUBLIC_KEY_FILE}, for trying signing out")
    parser.add_argument("--key", type=Path, metavar="PEM", help="signing: the EC private key (PEM)")
    parser.add_argument("--password-env", metavar="VAR",
                        help="signing: the private key's password is in environment variable VAR; "
                             "--keygen: encrypt the new private key with it")
    parser.add_argument("--signing-certificate", type=Path, metavar="PEM",
                        help="signing: the key's certificate; the bundle then verifies against a CA chain")
    parser.add_argument("--certificate-chain", type=Path, nargs="+", default=[], metavar="PEM",
                        help="signing: the certificates from --signing-certificate's issuer up to the CA")
    parser.add_argument("--trusted-key", type=Path, metavar="PEM",
                        help="verifying: the trusted EC public key, or the trusted CA's certificate chain")
    return parser


def _password(parser: argparse.ArgumentParser, variable: str | None) -> bytes | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        parser.error(f"--password-env {variable}: the environment variable is not set")
    return value.encode()


def keygen(directory: Path, password: bytes | None = None) -> tuple[Path, Path]:
    """Write a new EC P-256 private key (PKCS #8 PEM, mode 0600; encrypted when ``password`` is given)
    and its public key into ``directory``; refuse to overwrite either. Returns (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # never readable by others
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keygen is not None:
        try:
            private_path, public_path = keygen(args.keygen, _password(parser, args.password_env))
        except (FileExistsError, NotADirectoryError, PermissionError) as err:
            parser.error(str(err))
        print(f"private key {private_path} (mode 0600: keep it out of the repository and the image)\n"
              f"public key  {public_path} (mount it as AFRNN_TRUSTED_KEY), "
              f"SHA-256 {key_fingerprint(public_path)}")
        return 0
    if args.verify is not None:
        if args.trusted_key is None:
            parser.error("--verify needs --trusted-key")
        try:
            status = verify_folder(args.verify, args.trusted_key)
        except SignatureRefused as refused:
            print(f"afrnn-sign: {refused}", file=sys.stderr)
            return 1
        except (OSError, ValueError) as err:          # the trusted key: missing, unreadable, not a key
            parser.error(f"--trusted-key {args.trusted_key}: {err}")
        print(f"{folder_label(args.verify)}: {status.detail}")
        return 0
    if args.key is None:
        parser.error("signing needs --key (or use --verify / --keygen)")
    password = _password(parser, args.password_env)
    try:
        signature = sign_folder(args.folder, args.key, password=password,
                                certificate_chain=args.certificate_chain,
                                signing_certificate=args.signing_certificate)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(f"{folder_label(args.folder)}: wrote {signature.name} ({SIGNATURE_FILE} covers every other file "
          f"of the folder)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
