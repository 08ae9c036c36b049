"""Load-time check that a manifest describes the module it ships with.

The SHA-256 check (``artifact.export.load_exported``) proves that the ``.pt`` is the file the manifest
names, not that the manifest's description of it is true. A manifest edited by hand, or copied next
to the wrong model, would otherwise be served: requests validated against shapes the network was not
trained on, answers decoded with the wrong class list. So, before warm-up, every fact the manifest
states that can be read back from the module is compared with it:

* ``input.channels`` and ``architecture.config.input_size`` — columns of ``weight_in`` (C);
* the number of outputs — rows of ``head.weight``: ``len(output.class_names)`` for a classifier,
  4 states for the pendulum, and ``architecture.config.output_size``;
* ``architecture.config.layer_sizes`` — their sum is the module's ``state_size`` (D);
* ``parameters`` — the module's parameter count;
* ``architecture.config.discretisation`` — the module's step (``imex``, or explicit Euler), where the
  module records it (exports since the IMEX form);
* for the known image tasks, ``input.sequence_length`` and ``channels`` — the task's pixel protocol
  (``artifact.specs``: MNIST 784 × 1, CIFAR-10 1024 × 3); a classifier accepts any length, so this
  is the only place a wrong length can be caught.

Any contradiction raises ``ManifestMismatchError`` naming the manifest field, both values and the
module's source of truth; the model is then unavailable with that reason.
"""

import torch

from artifact import specs
from artifact.manifest import Manifest

# Pixel protocols of the known image tasks: (sequence_length, channels).
IMAGE_TASKS = {"mnist": (specs.mnist_input_spec()["sequence_length"], specs.mnist_input_spec()["channels"]),
               "cifar10": (specs.cifar10_input_spec()["sequence_length"],
                           specs.cifar10_input_spec()["channels"])}
PENDULUM_STATES = 4


class ManifestMismatchError(ValueError):
    """The manifest contradicts the module it names."""


def check_manifest_matches_module(manifest: Manifest, module: torch.jit.ScriptModule) -> None:
    """Raise ``ManifestMismatchError`` on the first fact of ``manifest`` that ``module`` contradicts."""
    params = dict(module.named_parameters())
    problems: list[str] = []

    def expect(field: str, stated, actual, source: str) -> None:
        if stated is not None and stated != actual:
            problems.append(f"manifest {field} = {stated} but the module has {actual} ({source})")

    config = manifest.architecture.config or {}
    weight_in = params.get("weight_in")
    if weight_in is not None:
        expect("input.channels", manifest.input.channels, int(weight_in.shape[1]), "columns of weight_in")
        expect("architecture.config.input_size", config.get("input_size"), int(weight_in.shape[1]),
               "columns of weight_in")
    head = params.get("head.weight")
    if head is not None:
        outputs = int(head.shape[0])
        if manifest.output.kind == "classes" and manifest.output.class_names:
            expect("len(output.class_names)", len(manifest.output.class_names), outputs,
                   "rows of head.weight")
        if manifest.output.kind == "states":
            expect("output (pendulum states)", PENDULUM_STATES, outputs, "rows of head.weight")
        expect("architecture.config.output_size", config.get("output_size"), outputs, "rows of head.weight")
    if "layer_sizes" in config and hasattr(module, "state_size"):
        expect("sum(architecture.config.layer_sizes)", sum(int(s) for s in config["layer_sizes"]),
               int(module.state_size), "the module's state_size")
    expect("parameters", manifest.parameters, sum(p.numel() for p in module.parameters()),
           "the module's parameter count")
    if hasattr(module, "imex"):
        expect("architecture.config.discretisation", config.get("discretisation"),
               "imex" if bool(module.imex) else "euler", "the module's imex flag")
    protocol = IMAGE_TASKS.get(manifest.task)
    if protocol is not None:
        expect("input.sequence_length", manifest.input.sequence_length, protocol[0],
               f"the {manifest.task} pixel protocol, artifact.specs")
        expect("input.channels", manifest.input.channels, protocol[1],
               f"the {manifest.task} pixel protocol, artifact.specs")
    if problems:
        raise ManifestMismatchError(f"manifest {manifest.name!r} contradicts its model: "
                                    + "; ".join(problems))
