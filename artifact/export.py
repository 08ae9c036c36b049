"""Export and verified loading of served models: all artifact-format code lives here.

The deployment format is TorchScript (``torch.jit.script``, not trace: the recurrence has a loop over
the sequence). ``torch.export`` is PyTorch's recommended successor; a second format would be added
here, as another ``Artifact.format``, without touching the service, which only calls
``load_exported``.

A TorchScript file is code, so ``load_exported`` checks the file's SHA-256 against the manifest
*before* ``torch.jit.load`` and refuses a mismatch.

An exported model's weights are fixed: ``load_exported`` lets the module compute what depends on them
alone (its coupling B and step coupling B̃) once (``fix_weights``, ``model.afrnn``) rather than at
every call. To train from an artifact, load its ``state_dict`` into a freshly built model
(``--init-from``), not the loaded module.
"""

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from artifact.manifest import Artifact, Manifest


class ArtifactIntegrityError(ValueError):
    """The artifact is missing, or its SHA-256 differs from its manifest's."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def export_torchscript(model: nn.Module, out_dir: Path | str, manifest_fields: dict[str, Any]) -> Manifest:
    """Script ``model`` on the CPU, save ``<name>.pt`` and its manifest ``<name>.json`` in ``out_dir``.

    ``manifest_fields`` holds every ``Manifest`` field except ``artifact``, which is computed here.
    The manifest is validated before anything is written, so a bad field never leaves a half export.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = manifest_fields["name"]
    probe = Artifact(file=f"{name}.pt", sha256="0" * 64, bytes=0)
    Manifest.model_validate({**manifest_fields, "artifact": probe.model_dump()})   # fail early

    plain = copy.deepcopy(unwrap(model)).cpu().eval()
    scripted = torch.jit.script(plain)
    pt_path = out_dir / f"{name}.pt"
    tmp = pt_path.with_suffix(".pt.tmp")
    torch.jit.save(scripted, str(tmp))
    tmp.replace(pt_path)
    artifact = Artifact(file=pt_path.name, sha256=sha256_of(pt_path), bytes=pt_path.stat().st_size)
    manifest = Manifest.model_validate({**manifest_fields, "artifact": artifact.model_dump()})
    write_manifest(manifest, out_dir / f"{name}.json")
    return manifest


def write_manifest(manifest: Manifest, path: Path | str) -> None:
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)


def read_manifest(path: Path | str) -> Manifest:
    """Parse and validate a manifest JSON file (raises pydantic.ValidationError or OSError)."""
    return Manifest.model_validate_json(Path(path).read_text())


def load_exported(manifest_path: Path | str, map_location: str | torch.device = "cpu"
                  ) -> tuple[torch.jit.ScriptModule, Manifest]:
    """Load the artifact of a manifest after checking its SHA-256; raises ``ArtifactIntegrityError``.

    The module is in eval mode and, where its artifact exports ``fix_weights`` (AFRNN-family
    models exported since it exists; ``python -m training.reexport`` adds it to older ones), holds its
    coupling B and step coupling B̃: for the IMEX step, a D × D solve saved at every forward pass."""
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    artifact_path = manifest_path.parent / manifest.artifact.file
    if not artifact_path.is_file():
        raise ArtifactIntegrityError(f"{artifact_path}: artifact named in {manifest_path.name} is missing")
    data = artifact_path.read_bytes()          # hash and load the same bytes: no swap in between
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.artifact.sha256:
        raise ArtifactIntegrityError(
            f"{artifact_path}: SHA-256 {actual} does not match the manifest's "
            f"{manifest.artifact.sha256}; refusing to load (a TorchScript file is code)")
    module = torch.jit.load(io.BytesIO(data), map_location=map_location)
    module.eval()
    if hasattr(module, "fix_weights"):
        with torch.no_grad():           # not inference_mode: the stability analysis differentiates the step
            module.fix_weights()
    return module, manifest
