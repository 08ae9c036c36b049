"""A run's output while it trains: log lines, and the metric records of ``<name>.metrics.jsonl``.

One JSON record per epoch (``kind`` 'epoch'), per intermediate validation ('eval'), per early stop
('stop') and the final test ('test'). The records are also kept in memory (``history``) and saved in
the training state, so that a resumed run rewrites the file to exactly what was saved (lines written
after the last save are dropped). Rank 0 alone writes; every rank keeps the history.
"""

import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from training.distributed import DistContext
from training.state import Progress


class RunRecords:
    def __init__(self, metrics_path: Path, ctx: DistContext):
        self.metrics_path, self.ctx = metrics_path, ctx
        self.history: list[dict] = []

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def add(self, record: dict) -> None:
        """Keep ``record`` and append it to the metrics file."""
        self.history.append(record)
        if self.ctx.is_main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def add_and_log(self, record: dict) -> None:
        self.add(record)
        self.log(format_record(record))

    def rewrite(self) -> None:
        """The JSONL file holds exactly the history (drops lines written after the last save)."""
        tmp = self.metrics_path.with_name(self.metrics_path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        tmp.replace(self.metrics_path)


def format_record(record: dict) -> str:
    """One log line: ``[kind] key=value …`` (floats to 4 significant digits), ``*best*`` if it is."""
    shown = {k: v for k, v in record.items() if k not in ("kind", "best") and v is not None}
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    return f"[{record['kind']}] {text}" + (" *best*" if record.get("best") else "")


def postfix(loss: float, progress: Progress) -> dict[str, str]:
    """The progress bar's (and the step log line's) loss and running epoch accuracy."""
    shown = {"loss": f"{loss:.4g}"}
    if "accuracy" in progress.epoch_sums and progress.epoch_count:
        shown["acc"] = f"{progress.epoch_sums['accuracy'] / progress.epoch_count:.3f}"
    return shown


def epoch_totals(progress: Progress, ctx: DistContext,
                 device: torch.device) -> tuple[dict[str, float], int, float, float]:
    """The current epoch's (metric sums, sample count, gradient-norm sum, gradient-norm max) over all
    ranks (a collective call: every rank must make it)."""
    keys = sorted(progress.epoch_sums)
    p = progress
    vector = torch.tensor([p.epoch_sums[k] for k in keys] + [p.epoch_count, p.grad_norm_sum],
                          dtype=torch.float64, device=device)
    ctx.all_reduce_sum(vector)
    gmax = ctx.all_reduce_max(torch.tensor([p.grad_norm_max], dtype=torch.float64, device=device))
    values = vector.tolist()
    sums = dict(zip(keys, values[:len(keys)], strict=True))
    return sums, int(values[len(keys)]), values[-1], float(gmax.item())
