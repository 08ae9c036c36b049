"""The parts a run is assembled from: the config of a resumed run, the data splits, the optimiser and
its schedule, the random streams, and the DistributedDataParallel wrapper. ``Trainer.__init__`` calls
them in a fixed order (the order fixes the random streams, so it is part of a run's definition).
"""

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau

from artifact.export import load_exported
from model.afrnn import step_coupling
from model.inference import cpu_flags
from training.config import ConfigError, TrainConfig
from training.distributed import DistContext
from training.state import read_state
from training.tasks import Task, split_indices

# config fields that may change when a run is resumed (everything else must match the saved run)
RESUMABLE_FIELDS = ("epochs", "eval_every", "eval_batch_size", "data_dir", "cache_dir", "lr", "description")


BF16_DOT_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def training_recurrence(requested: str, device: torch.device, flags: frozenset | None = None) -> str:
    """The training path (``model.afrnn.TRAINING_PATHS``) for ``--recurrence``. ``auto`` is
    ``fused-bf16`` on a CPU with a bf16 dot-product instruction (``BF16_DOT_FLAGS``; its bf16 GEMMs run
    3–4× the fp32 ones), else ``fused``: elsewhere torch emulates bf16 GEMMs, and on CUDA bf16 training
    has not been measured here. ``flags``: the CPU's (default: this machine's, ``cpu_flags``)."""
    if requested != "auto":
        return requested
    if device.type != "cpu":
        return "fused"
    return "fused-bf16" if BF16_DOT_FLAGS & (cpu_flags()[1] if flags is None else flags) else "fused"


def load_initial_weights(model: nn.Module, path: str) -> None:
    """Load the weights of ``path`` into ``model`` (``--init-from``): an exported model's manifest
    (``<name>.json``, its ``.pt`` checked against the manifest's SHA-256) or a training state
    (``<name>.train.pt``: its current weights). ``load_state_dict`` is strict, so every parameter and
    buffer must be there with its shape, else ``ConfigError`` with torch's account of what differs."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"--init-from {path}: no such file")
    if source.suffix == ".json":
        weights = load_exported(source, map_location="cpu")[0].state_dict()
    else:
        weights = read_state(source)["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ConfigError(f"--init-from {path}: not the same architecture: {err}") from None


def resolve_resumed_config(saved: TrainConfig, requested: TrainConfig, explicit: set[str]) -> TrainConfig:
    """The saved run's config, with the explicitly given fields that may change on resume."""
    changes = {}
    for key in sorted(explicit):
        if key not in TrainConfig.model_fields:
            continue
        new, old = getattr(requested, key), getattr(saved, key)
        if new == old:
            continue
        if key not in RESUMABLE_FIELDS:
            raise ConfigError(f"--{key.replace('_', '-')} {new!r} differs from the resumed run's {old!r}; "
                             f"a resumed run keeps its config (only {', '.join(RESUMABLE_FIELDS)} and the "
                             f"run options may change)")
        changes[key] = new
    return saved.model_copy(update=changes)


@dataclass
class Splits:
    train: Any              # ImageSequences | PendulumTrajectories, without the validation samples
    val: Any | None         # None without --val-size
    test: Any
    dataset_hash: str


def load_splits(task: Task, cfg: TrainConfig) -> Splits:
    """The task's data, cut to ``limit_train`` / ``limit_test``, with a seeded validation hold-out of
    ``val_size`` training samples (``tasks.split_indices``)."""
    data = task.load(cfg)
    train, test = data.train, data.test
    if cfg.limit_train is not None and cfg.limit_train < len(train):
        train = train.subset(torch.arange(cfg.limit_train))
    if cfg.limit_test is not None and cfg.limit_test < len(test):
        test = test.subset(torch.arange(cfg.limit_test))
    val = None
    if cfg.val_size:
        train_idx, val_idx = split_indices(len(train), cfg.val_size, cfg.seed)
        val = train.subset(torch.from_numpy(val_idx))
        train = train.subset(torch.from_numpy(train_idx))
    return Splits(train, val, test, data.dataset_hash)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> ReduceLROnPlateau | None:
    """ReduceLROnPlateau (stepped at epoch ends on the watched loss) for ``lr_schedule='plateau'``."""
    if cfg.lr_schedule != "plateau":
        return None
    return ReduceLROnPlateau(optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)


def seed_rank_streams(seed: int, rank: int) -> None:
    """Per-rank torch, Python and numpy streams from here on (the initial weights come before, from
    ``torch.manual_seed(seed)`` on every rank, so that all ranks start equal)."""
    torch.manual_seed(seed + rank)
    random.seed(seed + rank)
    np.random.seed(seed + rank)


def wrap_ddp(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module the training step calls: DistributedDataParallel under torchrun, else the model."""
    if not ctx.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def euler_factor(model: nn.Module) -> float | None:
    """max_i |1 + ε λ_i(B̃)| of an AFRNN-family model: the step's growth factor with D_t = I (≤ 1:
    stable), B̃ = B for the explicit-Euler step (for the IMEX form it is the Cayley transform's
    modulus, ≤ 1 by construction). The stability report's ``euler_margin`` is 1 minus the explicit-Euler
    factor along a trajectory."""
    if not hasattr(model, "coupling_matrix"):
        return None
    with torch.no_grad():
        eigenvalues = torch.linalg.eigvals(step_coupling(model).detach().double().cpu())
    return float((1 + model.epsilon * eigenvalues).abs().max())
