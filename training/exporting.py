"""From a trained model to a served artifact: the manifest's fields (with the run's provenance: git
commit, hardware, command, hyperparameters) and the check that the exported TorchScript file computes
what the eager model computes. ``artifact.export`` writes and hashes the files.
"""

import copy
import json
import os
import platform
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from artifact.export import load_exported
from model.paper import count_parameters
from training.data.paths import REPO_ROOT
from training.distributed import DistContext


def code_version() -> str:
    """``git rev-parse HEAD`` of the repository ('-dirty' if model/ or training/ has uncommitted
    changes), or 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "model", "training"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "") if head else "unknown"


def hardware_string(device: torch.device, ctx: DistContext) -> str:
    if device.type == "cuda":
        what = f"{torch.cuda.get_device_name(device)} GPU"
    else:
        what = f"{os.cpu_count()}-core {platform.machine()} CPU ({torch.get_num_threads()} threads)"
    if ctx.enabled:
        what = f"{ctx.world_size} processes x {what}"
    return f"{what}, torch {torch.__version__}"


def manifest_fields(trainer, metrics: dict[str, float], stop_reason: str | None) -> dict:
    """``Manifest`` fields (all but the artifact's) of the model a ``Trainer`` exports."""
    cfg, p = trainer.cfg, trainer.progress
    version_code = code_version()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    family = "lstm" if cfg.model == "lstm" else "afrnn"
    hyper = cfg.model_dump(mode="json", exclude={"description"})
    hyper.update(world_size=trainer.ctx.world_size, recurrence=trainer.recurrence, steps=p.global_step,
                 stop_reason=stop_reason,
                 selected=("best by validation " + trainer.objective.selection[0]
                           if trainer.best_state is not None else "last"),
                 best_epoch=p.best_epoch, best_validation=p.best_value,
                 train_samples=len(trainer.train_data),
                 val_samples=len(trainer.val_data) if trainer.val_data is not None else 0)
    config = json.loads(json.dumps(asdict(trainer.model_config)))
    if config.get("step_bound") is not None:
        config["step_bound"] = None          # folded into the exported R and W (AFRNN.fold_step_bound)
    return dict(
        name=cfg.name, version=f"{stamp}-{version_code[:12]}", description=cfg.description, task=cfg.task,
        architecture=dict(family=family, variant=cfg.model, config=config),
        parameters=count_parameters(trainer.model),
        input=trainer.task.input_spec(trainer.test_data),
        output=trainer.task.output_spec(trainer.test_data),
        metrics=metrics,
        training=dict(epochs=round(trainer.epoch_position(), 6), wall_time_s=round(p.elapsed_s, 3),
                      hardware=hardware_string(trainer.device, trainer.ctx), command=trainer.run.command,
                      hyperparameters=hyper),
        dataset_hash=trainer.dataset_hash, code_version=version_code, torch_version=torch.__version__)


def verify_export(model: nn.Module, manifest_path: Path, test_data, every_step: bool) -> None:
    """Reload the artifact (SHA-256 checked) and compare it with the eager model on two test samples."""
    loaded, _ = load_exported(manifest_path)
    x, _ = test_data.batch(torch.arange(min(2, len(test_data))), "cpu")
    eager = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        want = eager(x, every_step=every_step)
        got = loaded(x, every_step=every_step)
    diff = float((want - got).abs().max())
    if not diff <= 1e-4:
        raise RuntimeError(f"exported TorchScript differs from the eager model by {diff}")

