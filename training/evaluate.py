"""Evaluation of a model on a whole split, sharded over ranks.

Every sample's metrics are computed once (rank r takes samples r, r + W, r + 2W, … without padding)
and all-reduced into full-length vectors, so every rank gets the same summary, and order-dependent
metrics such as the pendulum's ``paper_metric`` (test batches of 8, in order) are exact.
"""

import torch
from torch import nn

from training.distributed import DistContext


@torch.no_grad()
def per_sample_metrics(model: nn.Module, data, objective, batch_size: int, device: torch.device,
                       ctx: DistContext | None = None) -> dict[str, torch.Tensor]:
    """Per-sample metric vectors (N,) over all of ``data`` (float64, on the CPU)."""
    ctx = ctx or DistContext()
    was_training = model.training
    model.eval()
    n = len(data)
    mine = torch.arange(ctx.rank, n, ctx.world_size)
    collected: dict[str, torch.Tensor] = {}
    for chunk in mine.split(batch_size):
        x, y = data.batch(chunk, device)
        values = objective.per_sample(objective.outputs(model, x), y)
        for key, v in values.items():
            if key not in collected:
                collected[key] = torch.zeros(n, dtype=torch.float64, device=device)
            collected[key][chunk.to(device)] = v.double()
    if not collected:                      # this rank got no samples: learn the keys from one sample
        x, y = data.batch(torch.arange(min(1, n)), device)
        collected = {k: torch.zeros(n, dtype=torch.float64, device=device)
                     for k in objective.per_sample(objective.outputs(model, x), y)}
    for key in sorted(collected):
        ctx.all_reduce_sum(collected[key])
    model.train(was_training)
    return {key: value.cpu() for key, value in collected.items()}


def evaluate(model: nn.Module, data, objective, batch_size: int, device: torch.device,
             ctx: DistContext | None = None) -> dict[str, float]:
    """The objective's summary metrics of ``model`` on all of ``data``."""
    return objective.summarise(per_sample_metrics(model, data, objective, batch_size, device, ctx))
