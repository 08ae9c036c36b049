"""Per-task model APIs in the LitServe split: decode → batch → predict → unbatch → encode.

``decode`` and ``encode`` run in the request handler; ``run_batch`` (batch → predict → unbatch) runs in
the model's batcher thread.

Which API serves a model — its *interface*, "classifier" or "pendulum" — follows from its manifest
alone, through ``interface_of``: every place that asks "is this a classifier?" (the registry, the
stability endpoints) asks that one function.
"""

from typing import Literal

import torch

from artifact.manifest import Manifest
from service.tasks.classifier import ClassifierAPI, ClassifyJob
from service.tasks.pendulum import PendulumAPI, PendulumJob

TaskAPI = ClassifierAPI | PendulumAPI
Interface = Literal["classifier", "pendulum"]

CLASSIFIER: Interface = "classifier"
PENDULUM: Interface = "pendulum"
_API_OF_INTERFACE: dict[Interface, type[ClassifierAPI] | type[PendulumAPI]] = {
    CLASSIFIER: ClassifierAPI, PENDULUM: PendulumAPI}


def interface_of(manifest: Manifest) -> Interface:
    """The interface a model is served through: 'classifier' when its manifest's ``output.kind`` is
    'classes' (class probabilities), 'pendulum' when it is 'states' (predicted physical states)."""
    return CLASSIFIER if manifest.output.kind == "classes" else PENDULUM


def build_task_api(manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device) -> TaskAPI:
    """The task API of the manifest's interface (``ClassifierAPI`` or ``PendulumAPI``)."""
    return _API_OF_INTERFACE[interface_of(manifest)](manifest, module, device)


__all__ = ["CLASSIFIER", "PENDULUM", "ClassifierAPI", "ClassifyJob", "Interface", "PendulumAPI",
           "PendulumJob", "TaskAPI", "build_task_api", "interface_of"]
