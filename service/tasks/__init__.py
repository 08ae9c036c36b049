"""Per-task model APIs in the LitServe split: decode → batch → predict → unbatch → encode.

``decode`` and ``encode`` run in the request handler; ``run_batch`` (batch → predict → unbatch) runs in
the model's batcher thread.

Which API serves a model follows from its *kind*, the manifest's ``output.kind``
(``artifact.manifest.OutputKind``): ``ClassifierAPI`` for "classes", ``PendulumAPI`` for "states". Each
API class is the one place of its kind: ``KIND``, its decode and encode, its Open Inference Protocol
tensors (``V2_INPUT``, ``v2_signature``) and whether it streams (``STREAMS``).
"""

import torch

from artifact.manifest import Manifest, OutputKind
from service.tasks.classifier import ClassifierAPI, ClassifyJob
from service.tasks.pendulum import PendulumAPI, PendulumJob

TaskAPI = ClassifierAPI | PendulumAPI
TASK_APIS: dict[OutputKind, type[ClassifierAPI] | type[PendulumAPI]] = {
    api.KIND: api for api in (ClassifierAPI, PendulumAPI)}


def build_task_api(manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device) -> TaskAPI:
    """The task API of the manifest's kind (``ClassifierAPI`` or ``PendulumAPI``)."""
    return TASK_APIS[manifest.output.kind](manifest, module, device)


__all__ = ["TASK_APIS", "ClassifierAPI", "ClassifyJob", "PendulumAPI", "PendulumJob", "TaskAPI",
           "build_task_api"]
