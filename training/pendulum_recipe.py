"""Training levers for the double-pendulum AFRNN, kept out of the generic training loop.

Each lever is a ``TrainConfig`` option, off by default, so that old runs and presets are unchanged:

* ``lr_schedule = "cosine"`` (any task): the learning rate of optimizer step k (0-based) of a run
  of K = epochs · steps_per_epoch steps is

      lr_k = lr · ½ (1 + cos(π k / K)),

  from ``lr`` down to 0 at the last step. It is a function of the global step alone, so a resumed
  run continues on the same curve without any scheduler state.
* ``weight_decay`` (any task): decoupled weight decay (``torch.optim.AdamW``; with Adagrad, the
  optimizer's L2 term).
* ``standardize`` (pendulum): the network sees the initial state standardised, s₀' = (s₀ − μ_in)/σ_in,
  and is trained to output standardised states, ŷ' = (s − μ_out)/σ_out, with μ, σ per variable from
  the training split (after the validation hold-out). The placeholder inputs after step 0 stay 1.0,
  exactly as the service builds them. μ_in, σ_in go into the manifest's ``input.normalization_mean /
  std`` (which the service already applies to s₀), μ_out, σ_out into ``output.offset / scale``, which
  the service undoes (s = ŷ' · σ_out + μ_out). Every reported metric is computed after that
  de-normalisation, in rad and rad/s, so it is comparable with unstandardised runs.
* ``loss_weights`` (pendulum): per-variable weights w (θ1, θ2, ω1, ω2) of the training loss
  Σ w_v (ŷ_v − y_v)², in whatever space the network is trained in. The metrics are never weighted.
* ``init = "notebook"`` (AFRNN family): the reference notebook's initialisation: recurrent and
  coupling weights (R_n, W, F) ~ N(0, 0.25²), input weights E ~ N(0, 1), readout weights
  ~ N(0, (1/H)²) for a top layer of H units, biases 0.
"""

import math

import torch
from torch import Tensor, nn

from training.config import TrainConfig
from training.data.pendulum import PendulumTrajectories
from training.objectives import TrajectoryObjective

NOTEBOOK_COUPLING_STD = 0.25
NOTEBOOK_INPUT_STD = 1.0


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """lr_k = base · ½ (1 + cos(π k / K)); clamped to 0 at and after step K."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_scheduled_lr(cfg: TrainConfig, optimizer: torch.optim.Optimizer, step: int, total_steps: int) -> None:
    """Before optimizer step ``step``: set the learning rate of a per-step schedule (cosine)."""
    if cfg.lr_schedule != "cosine":
        return
    lr = cosine_lr(cfg.lr, step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """Adam (AdamW when ``weight_decay`` > 0) or Adagrad."""
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.weight_decay > 0:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr)


@torch.no_grad()
def notebook_init(model: nn.Module) -> None:
    """Re-initialise an AFRNN-family model the reference notebook's way (module docstring)."""
    if not hasattr(model, "coupling_matrix"):
        raise ValueError(f"init 'notebook' applies to the AFRNN family, not to {type(model).__name__}")
    for name, param in model.named_parameters():
        if name == "weight_in":
            param.normal_(0.0, NOTEBOOK_INPUT_STD)
        elif name.endswith(("weight_rec", "weight_ff", "weight_fb")):
            param.normal_(0.0, NOTEBOOK_COUPLING_STD)
        elif name == "head.weight":
            param.normal_(0.0, 1.0 / param.shape[1])
        elif name.endswith("bias"):
            param.zero_()
        else:
            raise ValueError(f"notebook init: no rule for parameter {name!r}")


class WeightedTrajectoryObjective(TrajectoryObjective):
    """``TrajectoryObjective`` for a network that outputs y' = (s − offset) / scale, with a
    per-variable weighted loss. The loss is Σ w_v (ŷ'_v − y'_v)² in the network's space; every
    per-sample metric is computed on ŷ = ŷ'·scale + offset against y = y'·scale + offset (raw units)."""

    def __init__(self, scale: Tensor | None = None, offset: Tensor | None = None,
                 weights: Tensor | None = None):
        self.scale, self.offset, self.weights = scale, offset, weights

    def _raw(self, values: Tensor) -> Tensor:
        if self.scale is None:
            return values
        return values * self.scale.to(values) + self.offset.to(values)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        squared = (outputs - targets).pow(2)
        if self.weights is not None:
            squared = squared * self.weights.to(squared)
        return squared.sum()

    def per_sample(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        return super().per_sample(self._raw(outputs), self._raw(targets))


def standardisation(train: PendulumTrajectories) -> dict[str, Tensor]:
    """Per-variable mean and std of the initial states and of the target states (1 … T) of ``train``."""
    states = train.states.double()
    initial, targets = states[:, 0], states[:, 1:].reshape(-1, 4)
    return {"input_mean": initial.mean(dim=0).float(), "input_std": initial.std(dim=0).float(),
            "target_mean": targets.mean(dim=0).float(), "target_std": targets.std(dim=0).float()}


def prepare(cfg: TrainConfig, train, val, test, objective):
    """(train, val, test, objective) with the pendulum levers of ``cfg`` applied (unchanged otherwise)."""
    if cfg.task != "pendulum":
        return train, val, test, objective
    if cfg.pendulum_input is not None:
        train, val, test = (None if data is None else data.with_encoding(cfg.pendulum_input)
                            for data in (train, val, test))
    if not cfg.standardize and cfg.loss_weights is None:
        return train, val, test, objective
    stats = standardisation(train) if cfg.standardize else {}

    def apply(data):
        return None if data is None else data.with_normalisation(**stats)

    weights = torch.tensor(cfg.loss_weights, dtype=torch.float32) if cfg.loss_weights is not None else None
    objective = WeightedTrajectoryObjective(stats.get("target_std"), stats.get("target_mean"), weights)
    return apply(train), apply(val), apply(test), objective
