"""Per-task model APIs in the LitServe split: decode → batch → predict → unbatch → encode.

``decode`` and ``encode`` run in the request handler; ``run_batch`` (batch → predict → unbatch) runs in
the model's batcher thread.

Which API serves a model follows from its *kind*, the manifest's ``output.kind``
(``artifact.manifest.OutputKind``): ``ClassifierAPI`` for "classes", ``PendulumAPI`` for "states".
"""

import torch

from artifact.manifest import Manifest, OutputKind
from service.tasks.classifier import ClassifierAPI, ClassifyJob
from service.tasks.pendulum import PendulumAPI, PendulumJob

TaskAPI = ClassifierAPI | PendulumAPI
_API_OF_KIND: dict[OutputKind, type[ClassifierAPI] | type[PendulumAPI]] = {
    "classes": ClassifierAPI, "states": PendulumAPI}


def build_task_api(manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device) -> TaskAPI:
    """The task API of the manifest's kind (``ClassifierAPI`` or ``PendulumAPI``)."""
    return _API_OF_KIND[manifest.output.kind](manifest, module, device)


__all__ = ["ClassifierAPI", "ClassifyJob", "PendulumAPI", "PendulumJob", "TaskAPI", "build_task_api"]
