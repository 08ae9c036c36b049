"""The training state ``<name>.train.pt``: what a run saves so that ``--resume`` continues it exactly.

The file is a dict that ``torch.load(..., weights_only=True)`` reads back (format ``STATE_VERSION`` 1):

* ``version``; ``config``: the resolved ``TrainConfig`` as JSON;
* ``model``, ``optimizer``, ``scheduler`` (None without one): their ``state_dict()``;
* ``progress``: ``Progress`` as a dict, its epoch sums already summed over all ranks;
* ``best_state``: the best-by-validation weights (None before the first validation);
* ``history``: the metric records of the run so far (``<name>.metrics.jsonl``);
* ``world_size``, ``steps_per_epoch``: to detect a resume with another number of processes;
* ``rng``: rank 0's generators, ``{"torch", "cuda" (None on the CPU), "numpy", "python"}``.

The numpy and Python generator states are stored as tensors and plain values, because weights-only
loading accepts nothing else: numpy's legacy state tuple ``(kind, keys, pos, has_gauss,
cached_gaussian)`` as a dict with ``keys`` an int64 tensor, and ``random.getstate()`` as a list.
Each library's own get/set pair (``torch.get_rng_state``, ``numpy.random.get_state``,
``random.getstate``, ``torch.cuda.get_rng_state``) does the capturing and restoring.
"""

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from training.config import ConfigError

STATE_VERSION = 1


@dataclass
class Progress:
    """Where a run stands; saved in the training state."""

    epoch: int = 0                  # the current epoch, 0-based (== epochs when training is done)
    step_in_epoch: int = 0          # optimizer steps already done in the current epoch
    global_step: int = 0
    elapsed_s: float = 0.0          # training wall time accumulated over all resumed runs
    resumes: int = 0                # times the run was continued with --resume
    best_value: float | None = None
    best_epoch: float | None = None
    best_step: int | None = None
    # running sums over the current epoch (all ranks together after a save): metric -> sum, and count
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0
    grad_norm_sum: float = 0.0
    grad_norm_max: float = 0.0

    @classmethod
    def from_saved(cls, saved: dict) -> "Progress":
        """The progress of a saved state. States written before ``resumes`` counted each start of the
        run instead (``sessions``: the first run and each resume), so ``resumes = sessions − 1``."""
        saved = dict(saved)
        if "sessions" in saved:
            saved["resumes"] = max(0, int(saved.pop("sessions")) - 1)
        return cls(**saved)

    def reset_epoch_sums(self) -> None:
        self.epoch_sums, self.epoch_count, self.grad_norm_sum, self.grad_norm_max = {}, 0, 0.0, 0.0


def capture_rng(device: torch.device) -> dict:
    """The generators' states of this process, in the weights-only-loadable form described above."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()),
    }


def restore_rng(rng: dict, device: torch.device) -> None:
    """Set this process's generators to a state ``capture_rng`` returned."""
    torch.set_rng_state(rng["torch"])
    np_state = rng["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
    if torch.cuda.is_available() and rng.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def read_state(path: Path) -> dict:
    """The training state at ``path``; ConfigError if it was written in another format version."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != STATE_VERSION:
        raise ConfigError(f"{path}: training-state version {state.get('version')}, expected {STATE_VERSION}")
    return state


def write_state(path: Path, state: dict) -> None:
    """Write ``state`` atomically: a reader sees the previous file or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"version": STATE_VERSION, **state}, tmp)
    os.replace(tmp, path)
