"""Re-export TorchScript checkpoints with the current model code, keeping their weights bit for bit.

    python -m training.reexport checkpoints/*.json
    python -m training.reexport models/mnist/3/mnist.json --signing-key signing-key.pem

An artifact holds its code as well as its weights: checkpoints exported before a method was added to
the model lack it (``advance``, used by streams; ``fix_weights``, with which an AFRNN computes its step
coupling once instead of at every forward pass). This rebuilds each module from its manifest's
architecture config, loads the artifact's own state dict into it (strict: same keys and shapes),
checks that the rebuilt model, scripted, answers as the old artifact does (bit for bit), exports it with
``artifact.export.export_torchscript`` (new SHA-256 and size in the manifest, every other manifest
field unchanged, byte for byte) and checks the new artifact: identical state dict, identical outputs.

A re-exported artifact invalidates its version folder's signature (``model.sig``): with
``--signing-key`` every manifest must sit in a version folder ``<name>/<version>/``, which is signed
again afterwards (``artifact.signing``); without it, a signed folder whose artifact changed is reported.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from artifact.export import export_torchscript, load_exported, read_manifest
from artifact.manifest import Manifest
from artifact.signing import SIGNATURE_FILE, check_signing_key, folder_label, is_version_folder, sign_folder
from model import AFRNNConfig, LSTMConfig, build_model

# Methods added to the models after their first exports: an artifact whose model class has one of them
# and that lacks it is re-exported.
ADDED_METHODS = ("advance", "fix_weights")


def rebuild(module: torch.jit.ScriptModule, manifest: Manifest) -> torch.nn.Module:
    """The eager model of the manifest's architecture with the artifact's weights."""
    arch = manifest.architecture
    config = LSTMConfig(**arch.config) if arch.family == "lstm" else AFRNNConfig(**arch.config)
    model = build_model(config)
    model.load_state_dict(module.state_dict(), strict=True)
    return model.eval()


def missing_methods(artifact: torch.jit.ScriptModule, model: torch.nn.Module) -> list[str]:
    """The methods of ``ADDED_METHODS`` that ``model``'s class has and the ``artifact`` lacks."""
    return [name for name in ADDED_METHODS if hasattr(model, name) and not hasattr(artifact, name)]


def _outputs(module, manifest: Manifest) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, manifest.input.sequence_length, manifest.input.channels, generator=g)
    with torch.inference_mode():
        return module(x, None, True)


def reexport(manifest_path: Path) -> Manifest:
    old, manifest = load_exported(manifest_path)
    model = rebuild(old, manifest)
    missing = missing_methods(old, model)
    if not missing:
        print(f"{manifest_path}: already exports {', '.join(ADDED_METHODS)} where its model has them; "
              f"left as it is")
        return manifest
    expected = _outputs(old, manifest)
    # scripted, as it will be exported (eager and TorchScript may round differently in the last bit)
    if not torch.equal(_outputs(torch.jit.script(model), manifest), expected):
        raise SystemExit(f"{manifest_path}: the rebuilt model does not answer as the artifact does")
    original = json.loads(manifest_path.read_text())
    fields = manifest.model_dump(mode="json", exclude={"artifact"})
    new_manifest = export_torchscript(model, manifest_path.parent, fields)
    # Keep the manifest file as it was but for the artifact's checksum and size (no new default fields).
    original["artifact"].update(sha256=new_manifest.artifact.sha256, bytes=new_manifest.artifact.bytes)
    manifest_path.write_text(json.dumps(original, indent=2) + "\n")
    new, _ = load_exported(manifest_path)
    old_state, new_state = old.state_dict(), new.state_dict()
    if old_state.keys() != new_state.keys() or not all(torch.equal(old_state[k], new_state[k])
                                                       for k in old_state):
        raise SystemExit(f"{manifest_path}: the re-exported weights differ")
    if not torch.equal(_outputs(new, manifest), expected) or missing_methods(new, model):
        raise SystemExit(f"{manifest_path}: the re-exported artifact does not answer as the old one")
    print(f"{manifest_path}: re-exported for {', '.join(missing)}, weights identical; sha256 "
          f"{manifest.artifact.sha256[:12]} → {new_manifest.artifact.sha256[:12]}")
    return new_manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path)
    parser.add_argument("--signing-key", type=Path, metavar="PEM",
                        help="sign each manifest's version folder <name>/<version>/ afterwards with this EC "
                             "private key (model.sig, as afrnn-sign; docs/signing.md)")
    parser.add_argument("--signing-key-password-env", metavar="VAR",
                        help="the signing key's password is in environment variable VAR")
    args = parser.parse_args(argv)
    password = None
    if args.signing_key_password_env is not None:
        if args.signing_key is None:
            parser.error("--signing-key-password-env needs --signing-key")
        if args.signing_key_password_env not in os.environ:
            parser.error(f"--signing-key-password-env {args.signing_key_password_env}: not set")
        password = os.environ[args.signing_key_password_env].encode()
    if args.signing_key is not None:
        flat = [str(p) for p in args.manifests if not is_version_folder(p.parent, p.stem)]
        if flat:
            parser.error(f"--signing-key signs a model version folder <name>/<version>/ as one unit; not in "
                         f"one (a flat directory holds several models): {', '.join(flat)}")
        try:
            check_signing_key(args.signing_key, password)
        except (OSError, ValueError) as err:
            parser.error(f"--signing-key: {err}")
    torch.set_num_threads(1)
    for path in args.manifests:
        before = read_manifest(path).artifact.sha256
        after = reexport(path).artifact.sha256
        if args.signing_key is not None:
            sign_folder(path.parent, args.signing_key, password=password)
            print(f"{path}: signed {folder_label(path.parent)}")
        elif after != before and (path.parent / SIGNATURE_FILE).exists():
            print(f"{path}: the artifact changed, so {folder_label(path.parent)}/{SIGNATURE_FILE} no longer "
                  f"verifies: re-sign it (--signing-key, or afrnn-sign)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
