"""The training loop: one run from data to an exported, verified TorchScript checkpoint.

A run (``Trainer.fit``) trains for ``epochs`` epochs of shuffled mini-batches, validates on a held-out
part of the train split (``val_size``) at every epoch end (and every ``eval_every`` steps), keeps the
best weights by the objective's selection metric, and finally evaluates the best model (the last one
when there is no validation split) on the whole test split and exports it with its manifest.

Files in ``out_dir`` for a run named ``<name>``:

* ``<name>.train.pt``       training state, rewritten atomically every ``checkpoint_minutes`` and at
                            each epoch end: model, optimizer, scheduler, epoch and step within the
                            epoch, running epoch sums, best validation and its weights, RNG states,
                            accumulated wall time, history and the resolved config;
* ``<name>.metrics.jsonl``  one JSON record per epoch (``kind`` 'epoch'), per intermediate validation
                            ('eval'), per early stop ('stop') and the final test ('test');
* ``<name>.curve.png``      the learning curve;
* ``<name>.pt``, ``<name>.json``   the TorchScript artifact and its manifest (``artifact.export``).

Resume (``RunOptions.resume``) restores everything above and continues at the saved step, mid-epoch
if need be: the epoch's sample order is a function of (seed, epoch) (``DistributedSampler``), so the
remaining batches are the ones that were not yet seen. ``max_minutes`` bounds the total training wall
time accumulated across resumes; ``max_steps`` the total number of optimizer steps. Either stops the
loop cleanly, after which the run still evaluates and exports.

Distributed (``torchrun``): the model is wrapped in DistributedDataParallel, each rank trains on its
``DistributedSampler`` shard with ``batch_size / world_size`` samples per step, and the stop and save
decisions are all-reduced so that every rank leaves the loop at the same step. Rank 0 alone writes.
"""

import copy
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from artifact.export import export_torchscript, load_exported, unwrap
from artifact.manifest import Manifest
from model.paper import build_model, count_parameters
from training.config import ConfigError, RunOptions, TrainConfig
from training.curves import plot_learning_curve
from training.data.paths import REPO_ROOT
from training.distributed import DistContext, setup_distributed, teardown_distributed
from training.evaluate import evaluate
from training.tasks import get_task, split_indices

STATE_VERSION = 1
# config fields that may change when a run is resumed (everything else must match the saved run)
RESUMABLE_FIELDS = ("epochs", "eval_every", "eval_batch_size", "data_dir", "cache_dir")


@dataclass
class Progress:
    """Where a run stands; saved in the training state."""

    epoch: int = 0                  # the current epoch, 0-based (== epochs when training is done)
    step_in_epoch: int = 0          # optimizer steps already done in the current epoch
    global_step: int = 0
    elapsed_s: float = 0.0          # training wall time accumulated over all sessions
    sessions: int = 0
    best_value: float | None = None
    best_epoch: float | None = None
    best_step: int | None = None
    # running sums over the current epoch (all ranks together after a save): metric -> sum, and count
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0
    grad_norm_sum: float = 0.0
    grad_norm_max: float = 0.0


class _IndexSet:
    """A stand-in "dataset" of n indices for ``DistributedSampler`` (which only needs ``len``)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


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


def euler_factor(model: nn.Module) -> float | None:
    """max_i |1 + ε λ_i(B)| of an AFRNN-family model: the explicit-Euler growth factor with D_t = I
    (≤ 1: stable). The stability report's ``euler_margin`` is 1 minus the factor along a trajectory."""
    if not hasattr(model, "coupling_matrix"):
        return None
    with torch.no_grad():
        eigenvalues = torch.linalg.eigvals(model.coupling_matrix().detach().double().cpu())
    return float((1 + model.epsilon * eigenvalues).abs().max())


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


class Trainer:
    def __init__(self, cfg: TrainConfig, run: RunOptions, ctx: DistContext, device: torch.device,
                 explicit: set[str] | None = None):
        self.run, self.ctx, self.device = run, ctx, device
        if run.threads is not None:
            torch.set_num_threads(run.threads)
        self.out_dir = Path(run.out_dir)
        name = cfg.name
        self.state_path = self.out_dir / f"{name}.train.pt"
        self.metrics_path = self.out_dir / f"{name}.metrics.jsonl"
        self.curve_path = self.out_dir / f"{name}.curve.png"
        state = None
        if run.resume and self.state_path.is_file():
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
            if state.get("version") != STATE_VERSION:
                raise ConfigError(f"{self.state_path}: training-state version {state.get('version')}, "
                                 f"expected {STATE_VERSION}")
            cfg = resolve_resumed_config(TrainConfig(**state["config"]), cfg, explicit or set())
        elif run.resume:
            self.log(f"--resume: no training state at {self.state_path}; starting a new run")
        elif self.state_path.is_file():
            self.log(f"starting a new run: {self.state_path} will be overwritten (--resume continues it)")
        self.cfg = cfg
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {ctx.world_size} "
                             "processes (each rank takes batch_size / world_size samples per step)")
        self.rank_batch = cfg.batch_size // ctx.world_size
        self.task = get_task(cfg.task)
        self.objective = self.task.objective
        self._load_data()

        torch.manual_seed(cfg.seed)               # identical initial weights on every rank
        self.model_config = cfg.model_config_object()
        self.model = build_model(self.model_config).to(device)
        self.optimizer = self._make_optimizer()
        self.scheduler = (ReduceLROnPlateau(self.optimizer, mode="min", factor=cfg.plateau_factor,
                                            patience=cfg.plateau_patience)
                          if cfg.lr_schedule == "plateau" else None)
        self.progress = Progress()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict] = []
        self.sampler = DistributedSampler(_IndexSet(len(self.train_data)), num_replicas=ctx.world_size,
                                          rank=ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False)
        self.steps_per_epoch = math.ceil(len(self.sampler) / self.rank_batch)
        torch.manual_seed(cfg.seed + ctx.rank)    # per-rank streams from here on
        random.seed(cfg.seed + ctx.rank)
        np.random.seed(cfg.seed + ctx.rank)
        if state is not None:
            self._restore(state)
        if ctx.enabled:
            self.ddp = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        else:
            self.ddp = self.model
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._rewrite_metrics()

    # -- set-up ------------------------------------------------------------------------------
    def _load_data(self) -> None:
        cfg = self.cfg
        data = self.task.load(cfg)
        self.dataset_hash = data.dataset_hash
        train, test = data.train, data.test
        if cfg.limit_train is not None and cfg.limit_train < len(train):
            train = train.subset(torch.arange(cfg.limit_train))
        if cfg.limit_test is not None and cfg.limit_test < len(test):
            test = test.subset(torch.arange(cfg.limit_test))
        if cfg.val_size:
            train_idx, val_idx = split_indices(len(train), cfg.val_size, cfg.seed)
            self.val_data = train.subset(torch.from_numpy(val_idx))
            train = train.subset(torch.from_numpy(train_idx))
        else:
            self.val_data = None
        self.train_data, self.test_data = train, test

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.cfg.optimizer == "adagrad":
            return torch.optim.Adagrad(params, lr=self.cfg.lr)
        return torch.optim.Adam(params, lr=self.cfg.lr)

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress(**state["progress"])
        self.best_state = state.get("best_state")
        self.history = list(state.get("history", []))
        if self.cfg.epochs != TrainConfig(**state["config"]).epochs:
            self.log(f"resume: epochs changed to {self.cfg.epochs}")
        if self.progress.step_in_epoch and (state.get("world_size") != self.ctx.world_size
                                            or state.get("steps_per_epoch") != self.steps_per_epoch):
            self.log("resume: the number of processes changed mid-epoch; restarting the epoch")
            p = self.progress
            p.global_step -= p.step_in_epoch
            self._reset_epoch_sums()
            p.step_in_epoch = 0
        if not self.ctx.is_main:                  # the saved epoch sums already cover all ranks
            self.progress.epoch_sums, self.progress.epoch_count, self.progress.grad_norm_sum = {}, 0, 0.0
        rng = state.get("rng")
        if rng is not None and self.ctx.is_main:
            torch.set_rng_state(rng["torch"])
            np_state = rng["numpy"]
            np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32),
                                 np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
            random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
            if torch.cuda.is_available() and rng.get("cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        p = self.progress
        self.log(f"resumed {self.state_path} at epoch {p.epoch}, "
                 f"step {p.step_in_epoch}/{self.steps_per_epoch} "
                 f"(global step {p.global_step}, {p.elapsed_s / 60:.1f} min trained)")

    # -- output ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.ctx.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def _rewrite_metrics(self) -> None:
        """The JSONL file holds exactly the saved history (drops lines written after the last save)."""
        tmp = self.metrics_path.with_name(self.metrics_path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        tmp.replace(self.metrics_path)

    def _record(self, record: dict) -> None:
        self.history.append(record)
        if self.ctx.is_main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _elapsed(self) -> float:
        return self.progress.elapsed_s + (time.monotonic() - self._session_start)

    def _global_epoch_sums(self) -> tuple[dict[str, float], int, float, float]:
        """The current epoch's metric sums over all ranks (a collective call)."""
        p = self.progress
        keys = sorted(p.epoch_sums)
        vector = torch.tensor([p.epoch_sums[k] for k in keys] + [p.epoch_count, p.grad_norm_sum],
                              dtype=torch.float64, device=self.device)
        self.ctx.all_reduce_sum(vector)
        gmax = torch.tensor([p.grad_norm_max], dtype=torch.float64, device=self.device)
        if self.ctx.enabled:
            torch.distributed.all_reduce(gmax, op=torch.distributed.ReduceOp.MAX)
        values = vector.tolist()
        sums = dict(zip(keys, values[:len(keys)], strict=True))
        return sums, int(values[len(keys)]), values[-1], float(gmax.item())

    def save_state(self) -> None:
        """Write the training state atomically (collective: every rank must call it)."""
        sums, count, gsum, gmax = self._global_epoch_sums()
        self.progress.elapsed_s = self._elapsed()
        self._session_start = time.monotonic()
        if not self.ctx.is_main:
            return
        progress = asdict(self.progress)
        progress.update(epoch_sums=sums, epoch_count=count, grad_norm_sum=gsum, grad_norm_max=gmax)
        np_state = np.random.get_state()
        state = {
            "version": STATE_VERSION,
            "config": self.cfg.model_dump(mode="json"),
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "progress": progress,
            "best_state": self.best_state,
            "history": self.history,
            "world_size": self.ctx.world_size,
            "steps_per_epoch": self.steps_per_epoch,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "numpy": {"kind": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                          "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                          "cached_gaussian": float(np_state[4])},
                "python": list(random.getstate()),
            },
        }
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.state_path)

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self, indices: torch.Tensor) -> float:
        """One optimizer step on the samples ``indices``; returns the batch loss."""
        x, y = self.train_data.batch(indices, self.device)
        outputs = self.objective.outputs(self.ddp, x)
        loss = self.objective.loss(outputs, y)
        # DDP averages gradients over ranks; a summed loss must be scaled back to the global sum
        scale = self.ctx.world_size if self.objective.reduction == "sum" else 1
        self.optimizer.zero_grad(set_to_none=True)
        (loss * scale if scale != 1 else loss).backward()
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        self.optimizer.step()
        with torch.no_grad():
            per_sample = self.objective.per_sample(outputs.detach(), y)
        p = self.progress
        for key, values in per_sample.items():
            p.epoch_sums[key] = p.epoch_sums.get(key, 0.0) + float(values.double().sum())
        p.epoch_count += len(indices)
        p.grad_norm_sum += grad_norm
        p.grad_norm_max = max(p.grad_norm_max, grad_norm)
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        if self.val_data is None:
            return {}
        return evaluate(unwrap(self.model), self.val_data, self.objective, self.cfg.eval_batch_size,
                        self.device, self.ctx)

    def _consider_best(self, val: dict[str, float]) -> bool:
        if not val:
            return False
        key, mode = self.objective.selection
        value = val[key]
        best = self.progress.best_value
        if best is not None and not (value > best if mode == "max" else value < best):
            return False
        self.progress.best_value = value
        self.progress.best_epoch = self._epoch_position()
        self.progress.best_step = self.progress.global_step
        self.best_state = {k: v.detach().cpu().clone() for k, v in unwrap(self.model).state_dict().items()}
        return True

    def _epoch_position(self) -> float:
        return self.progress.epoch + self.progress.step_in_epoch / self.steps_per_epoch

    def _checkpoint_record(self, kind: str) -> dict:
        """Validate, update the best model and return the JSONL record (collective)."""
        sums, count, gsum, gmax = self._global_epoch_sums()
        train = {f"train_{k}": v / max(count, 1) for k, v in sums.items()}
        val = self.validate()
        improved = self._consider_best(val)
        steps = max(self.progress.step_in_epoch, 1)
        record = {"kind": kind, "epoch": round(self._epoch_position(), 6), "step": self.progress.global_step,
                  "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": round(self._elapsed(), 3),
                  **train, **{f"val_{k}": v for k, v in val.items()},
                  "grad_norm_mean": gsum / (steps * self.ctx.world_size), "grad_norm_max": gmax,
                  "best": improved}
        factor = euler_factor(unwrap(self.model))
        if factor is not None:
            record["euler_factor"] = factor
        return record

    def _end_epoch(self) -> None:
        record = self._checkpoint_record("epoch")
        if self.scheduler is not None:
            watched = record.get(f"val_{self.objective.schedule_metric}",
                                 record.get(f"train_{self.objective.schedule_metric}"))
            if watched is not None and math.isfinite(watched):
                self.scheduler.step(watched)
        self._record(record)
        self.log(self._format(record))
        self.progress.epoch += 1
        self.progress.step_in_epoch = 0
        self._reset_epoch_sums()
        self.save_state()
        self._last_save = time.monotonic()

    def _reset_epoch_sums(self) -> None:
        p = self.progress
        p.epoch_sums, p.epoch_count, p.grad_norm_sum, p.grad_norm_max = {}, 0, 0.0, 0.0

    @staticmethod
    def _format(record: dict) -> str:
        shown = {k: v for k, v in record.items() if k not in ("kind", "best") and v is not None}
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        return f"[{record['kind']}] {text}" + (" *best*" if record.get("best") else "")

    def _budget_spent(self) -> str | None:
        """Why the run must stop now (--max-steps or the cumulative --max-minutes), else None."""
        run, p = self.run, self.progress
        if run.max_steps is not None and p.global_step >= run.max_steps:
            return f"max_steps {run.max_steps} reached"
        if run.max_minutes is not None and self._elapsed() >= 60 * run.max_minutes:
            return f"max_minutes {run.max_minutes} reached"
        return None

    def fit(self) -> Manifest | None:
        """Train (or continue), then evaluate and export; returns the manifest on rank 0."""
        cfg, run, p = self.cfg, self.run, self.progress
        self._session_start = self._last_save = time.monotonic()
        p.sessions += 1
        self.log(f"run {cfg.name}: {cfg.task} / {cfg.model}, {count_parameters(self.model)} parameters, "
                 f"{len(self.train_data)} train / {len(self.val_data) if self.val_data else 0} val / "
                 f"{len(self.test_data)} test samples, {self.steps_per_epoch} steps per epoch, "
                 f"device {self.device}, {self.ctx.world_size} process(es), "
                 f"{torch.get_num_threads()} thread(s)")
        show_bar = self.ctx.is_main and (run.progress if run.progress is not None else sys.stderr.isatty())
        stop_reason = self._budget_spent()     # a resumed run whose budget is already used trains no step
        if stop_reason is not None:
            self.log(f"{stop_reason} before this session: raise --max-minutes / --max-steps to continue")
        while p.epoch < cfg.epochs and stop_reason is None:
            self.sampler.set_epoch(p.epoch)
            batches = torch.tensor(list(iter(self.sampler)), dtype=torch.long).split(self.rank_batch)
            bar = tqdm(total=self.steps_per_epoch, initial=p.step_in_epoch, disable=not show_bar,
                       desc=f"epoch {p.epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
            window_start, window_steps = time.monotonic(), 0
            for b in range(p.step_in_epoch, self.steps_per_epoch):
                loss = self.train_step(batches[b])
                p.step_in_epoch += 1
                p.global_step += 1
                window_steps += 1
                bar.update(1)
                if show_bar:
                    bar.set_postfix(self._postfix(loss), refresh=False)
                if p.global_step % run.log_every == 0:
                    ms = 1000 * (time.monotonic() - window_start) / window_steps
                    post = " ".join(f"{k} {v}" for k, v in self._postfix(loss).items())
                    if not show_bar:
                        self.log(f"epoch {p.epoch + 1} step {p.step_in_epoch}/{self.steps_per_epoch} "
                                 f"{post} lr {self.optimizer.param_groups[0]['lr']:.3g} {ms:.0f} ms/step "
                                 f"elapsed {self._elapsed() / 60:.1f} min")
                    window_start, window_steps = time.monotonic(), 0
                mid_epoch = p.step_in_epoch < self.steps_per_epoch
                if cfg.eval_every and p.global_step % cfg.eval_every == 0 and mid_epoch:
                    record = self._checkpoint_record("eval")
                    self._record(record)
                    self.log(self._format(record))
                reason = (f"non-finite training loss {loss} at step {p.global_step}"
                          if not math.isfinite(loss) else self._budget_spent())
                save_due = time.monotonic() - self._last_save >= 60 * run.checkpoint_minutes
                stop, save = self._agree(reason is not None, save_due)
                if stop:
                    stop_reason = reason or "another rank stopped"
                    break
                if save:
                    self.save_state()
                    self._last_save = time.monotonic()
            bar.close()
            if p.step_in_epoch >= self.steps_per_epoch:
                self._end_epoch()
        if stop_reason is not None:
            self.log(f"stopping: {stop_reason}")
            if p.step_in_epoch:
                record = self._checkpoint_record("stop")
                record["reason"] = stop_reason
                self._record(record)
                self.log(self._format(record))
            self.save_state()
        return self.finish(stop_reason)

    def _agree(self, stop: bool, save: bool) -> tuple[bool, bool]:
        """Stop/save decisions all ranks share (one all-reduce of two flags)."""
        if not self.ctx.enabled:
            return stop, save
        flags = torch.tensor([float(stop), float(save)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        return bool(flags[0] > 0), bool(flags[1] > 0)

    def _postfix(self, loss: float) -> dict[str, str]:
        p = self.progress
        shown = {"loss": f"{loss:.4g}"}
        if "accuracy" in p.epoch_sums and p.epoch_count:
            shown["acc"] = f"{p.epoch_sums['accuracy'] / p.epoch_count:.3f}"
        return shown

    # -- evaluation and export ---------------------------------------------------------------
    def final_model(self) -> nn.Module:
        """The best-by-validation model, or the last one when there is no validation split."""
        if self.best_state is None:
            return unwrap(self.model)
        model = build_model(self.model_config).to(self.device)
        model.load_state_dict(self.best_state)
        return model

    def finish(self, stop_reason: str | None) -> Manifest | None:
        cfg, p = self.cfg, self.progress
        model = self.final_model().eval()
        test = evaluate(model, self.test_data, self.objective, cfg.eval_batch_size, self.device, self.ctx)
        metrics = {f"test_{k}" if k in ("loss", "accuracy") else k: v for k, v in test.items()}
        metrics["test_samples"] = float(len(self.test_data))
        if self.ctx.is_main:
            record = {"kind": "test", "epoch": round(self._epoch_position(), 6), "step": p.global_step,
                      "elapsed_s": round(p.elapsed_s, 3), **metrics,
                      "model": "best by validation" if self.best_state is not None else "last"}
            self.history.append(record)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.log(self._format(record))
        manifest = None
        if self.ctx.is_main:
            manifest = export_torchscript(model, self.out_dir, self._manifest_fields(metrics, stop_reason))
            self._verify_export(model, manifest)
            plot_learning_curve(self.history, self.curve_path,
                                f"{cfg.name}: {cfg.task} / {cfg.model}, {count_parameters(model)} parameters")
            self.log(f"exported {self.out_dir / manifest.artifact.file} "
                     f"(sha256 {manifest.artifact.sha256[:12]}…), "
                     f"manifest {self.out_dir / (cfg.name + '.json')}, curve {self.curve_path}")
        self.ctx.barrier()
        return manifest

    def _manifest_fields(self, metrics: dict[str, float], stop_reason: str | None) -> dict:
        cfg, p = self.cfg, self.progress
        version_code = code_version()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        family = "lstm" if cfg.model == "lstm" else "afrnn"
        hyper = cfg.model_dump(mode="json")
        hyper.update(world_size=self.ctx.world_size, steps=p.global_step, stop_reason=stop_reason,
                     selected=("best by validation " + self.objective.selection[0]
                               if self.best_state is not None else "last"),
                     best_epoch=p.best_epoch, best_validation=p.best_value,
                     train_samples=len(self.train_data),
                     val_samples=len(self.val_data) if self.val_data is not None else 0)
        return dict(
            name=cfg.name, version=f"{stamp}-{version_code[:12]}", task=cfg.task,
            architecture=dict(family=family, variant=cfg.model,
                              config=json.loads(json.dumps(asdict(self.model_config)))),
            parameters=count_parameters(self.model),
            input=self.task.input_spec(self.test_data), output=self.task.output_spec(),
            metrics=metrics,
            training=dict(epochs=round(self._epoch_position(), 6), wall_time_s=round(p.elapsed_s, 3),
                          hardware=hardware_string(self.device, self.ctx), command=self.run.command,
                          hyperparameters=hyper),
            dataset_hash=self.dataset_hash, code_version=version_code, torch_version=torch.__version__)

    def _verify_export(self, model: nn.Module, manifest: Manifest) -> None:
        """Reload the artifact (SHA-256 checked) and compare it with the eager model on test samples."""
        loaded, _ = load_exported(self.out_dir / f"{manifest.name}.json")
        x, _ = self.test_data.batch(torch.arange(min(2, len(self.test_data))), "cpu")
        eager = copy.deepcopy(model).cpu().eval()
        with torch.no_grad():
            want = eager(x, every_step=self.objective.every_step)
            got = loaded(x, every_step=self.objective.every_step)
        diff = float((want - got).abs().max())
        if not diff <= 1e-4:
            raise RuntimeError(f"exported TorchScript differs from the eager model by {diff}")


def train(cfg: TrainConfig, run: RunOptions, explicit: set[str] | None = None) -> Manifest | None:
    """Run one training job (single process, or one rank of a torchrun job)."""
    ctx, device = setup_distributed(run.device)
    try:
        return Trainer(cfg, run, ctx, device, explicit).fit()
    finally:
        teardown_distributed(ctx)
