"""Per-task model APIs in the LitServe split: decode → batch → predict → unbatch → encode.

``decode`` and ``encode`` run in the request handler; ``run_batch`` (batch → predict → unbatch) runs in
the model's batcher thread. Which API serves a model follows from its manifest's ``output.kind``.
"""

import torch

from artifact.manifest import Manifest
from service.tasks.classifier import ClassifierAPI, ClassifyJob
from service.tasks.pendulum import PendulumAPI, PendulumJob

TaskAPI = ClassifierAPI | PendulumAPI


def build_task_api(manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device) -> TaskAPI:
    """``ClassifierAPI`` for output kind 'classes', ``PendulumAPI`` for 'states'."""
    if manifest.output.kind == "classes":
        return ClassifierAPI(manifest, module, device)
    return PendulumAPI(manifest, module, device)


__all__ = ["ClassifierAPI", "ClassifyJob", "PendulumAPI", "PendulumJob", "TaskAPI", "build_task_api"]
