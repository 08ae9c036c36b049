"""Single-process or ``torchrun`` DistributedDataParallel context.

Launched by ``torchrun --nproc_per_node=N -m training ...``, each process sees ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; it joins the process group (gloo on the CPU,
nccl on CUDA) and trains on its own shard. Rank 0 alone logs, saves and exports.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def agree(self, device: torch.device, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true on every rank if it is true on any (one all-reduce for all of them): the
        stop and save decisions that make all ranks leave the loop, or save, at the same step."""
        if not self.enabled:
            return flags
        values = self.all_reduce_max(torch.tensor([float(f) for f in flags], device=device))
        return tuple(bool(v > 0) for v in values)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup_distributed(device_choice: str) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun; pick the device ('auto' | 'cpu' | 'cuda')."""
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but torch.cuda.is_available() is False")
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if use_cuda:
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ctx, device


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
