"""The training loop: one run from data to an exported, verified TorchScript checkpoint.

A run (``Trainer.fit``) trains for ``epochs`` epochs of shuffled mini-batches, validates on a held-out
part of the train split (``val_size``) at every epoch end (and every ``eval_every`` steps), keeps the
best weights by the objective's selection metric, and finally evaluates the best model (the last one
when there is no validation split) on the whole test split and exports it with its manifest.

Files in ``out_dir`` for a run named ``<name>``:

* ``<name>.train.pt``       training state (``training.state``), rewritten atomically every
                            ``checkpoint_minutes`` and at each epoch end;
* ``<name>.metrics.jsonl``  the metric records (``training.records``);
* ``<name>.curve.png``      the learning curve;
* ``<name>.pt``, ``<name>.json``   the TorchScript artifact and its manifest (``artifact.export``,
                            fields from ``training.exporting``).

Resume (``RunOptions.resume``) restores everything above and continues at the saved step, mid-epoch
if need be: the epoch's sample order is a function of (seed, epoch) (``DistributedSampler``), so the
remaining batches are the ones that were not yet seen. ``max_minutes`` bounds the total training wall
time accumulated across resumes; ``max_steps`` the total number of optimizer steps. Either stops the
loop cleanly, after which the run still evaluates and exports.

Distributed (``torchrun``): the model is wrapped in DistributedDataParallel, each rank trains on its
``DistributedSampler`` shard with ``batch_size / world_size`` samples per step, and the stop and save
decisions are all-reduced (``DistContext.agree``) so that every rank leaves the loop at the same step.
Rank 0 alone writes.

The parts live in their own modules: ``training.components`` (config on resume, data splits,
optimiser, schedule, seeds, DDP), ``training.state`` (the state file and the RNG states),
``training.records`` (logs and metric records), ``training.exporting`` (manifest and export check).
"""

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from artifact.export import export_torchscript, unwrap
from artifact.manifest import Manifest
from model.paper import build_model, count_parameters
from training import components, pendulum_recipe
from training.components import euler_factor, resolve_resumed_config, training_recurrence
from training.config import ConfigError, RunOptions, TrainConfig
from training.curves import plot_learning_curve
from training.distributed import DistContext, setup_distributed, teardown_distributed
from training.evaluate import evaluate
from training.exporting import manifest_fields, verify_export
from training.records import RunRecords, epoch_totals, postfix
from training.state import Progress, capture_rng, read_state, restore_rng, write_state
from training.step_penalty import step_norm_penalty
from training.tasks import get_task


class _IndexSet:
    """A stand-in "dataset" of n indices for ``DistributedSampler`` (which only needs ``len``)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


class Trainer:
    def __init__(self, cfg: TrainConfig, run: RunOptions, ctx: DistContext, device: torch.device,
                 explicit: set[str] | None = None):
        self.run, self.ctx, self.device = run, ctx, device
        if run.threads is not None:
            torch.set_num_threads(run.threads)
        self.out_dir = Path(run.out_dir)
        self.state_path = self.out_dir / f"{cfg.name}.train.pt"
        self.curve_path = self.out_dir / f"{cfg.name}.curve.png"
        self.records = RunRecords(self.out_dir / f"{cfg.name}.metrics.jsonl", ctx)
        state = self._saved_state()
        if state is not None:
            cfg = resolve_resumed_config(TrainConfig(**state["config"]), cfg, explicit or set())
        self.cfg = cfg
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {ctx.world_size} "
                             "processes (each rank takes batch_size / world_size samples per step)")
        self.rank_batch = cfg.batch_size // ctx.world_size
        if cfg.step_norm_penalty is not None and ctx.world_size > 1:
            raise ConfigError("step_norm_penalty runs the model outside DDP's forward; "
                              "train it in one process")
        self.task = get_task(cfg.task)
        self.objective = self.task.objective
        splits = components.load_splits(self.task, cfg)
        self.dataset_hash = splits.dataset_hash
        self.train_data, self.val_data, self.test_data = splits.train, splits.val, splits.test
        self.train_data, self.val_data, self.test_data, self.objective = pendulum_recipe.prepare(
            cfg, self.train_data, self.val_data, self.test_data, self.objective)

        torch.manual_seed(cfg.seed)               # identical initial weights on every rank
        self.model_config = cfg.model_config_object()
        self.model = build_model(self.model_config).to(device)
        self.recurrence = training_recurrence(run.recurrence, device)
        if hasattr(self.model, "training_path"):               # the AFRNN family
            self.model.training_path = self.recurrence
        if cfg.init == "notebook":
            pendulum_recipe.notebook_init(self.model)
        if cfg.init_from is not None and state is None:       # a resumed run has its own weights
            components.load_initial_weights(self.model, cfg.init_from)
            self.log(f"initial weights from {cfg.init_from}")
        self.optimizer = self._make_optimizer()
        self.scheduler = components.make_scheduler(cfg, self.optimizer)
        self.progress = Progress()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.sampler = DistributedSampler(_IndexSet(len(self.train_data)), num_replicas=ctx.world_size,
                                          rank=ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False)
        self.steps_per_epoch = math.ceil(len(self.sampler) / self.rank_batch)
        components.seed_rank_streams(cfg.seed, ctx.rank)
        if state is not None:
            self._restore(state)
        self.ddp = components.wrap_ddp(self.model, ctx, device)
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.records.rewrite()

    # -- set-up ------------------------------------------------------------------------------
    def _saved_state(self) -> dict | None:
        """The training state to resume from, or None for a new run (saying why, when it matters)."""
        if self.run.resume and self.state_path.is_file():
            return read_state(self.state_path)
        if self.run.resume:
            self.log(f"--resume: no training state at {self.state_path}; starting a new run")
        elif self.state_path.is_file():
            self.log(f"starting a new run: {self.state_path} will be overwritten (--resume continues it)")
        return None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return pendulum_recipe.make_optimizer(self.cfg, self.model.parameters())

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        saved_lr = state["config"]["lr"]
        if self.cfg.lr != saved_lr:               # a manual step decay: --lr on --resume
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr
            self.log(f"resume: learning rate {saved_lr:g} -> {self.cfg.lr:g} (optimizer state kept)")
        self.progress = p = Progress.from_saved(state["progress"])
        p.resumes += 1
        self.best_state = state.get("best_state")
        self.records.history = list(state.get("history", []))
        if self.cfg.epochs != TrainConfig(**state["config"]).epochs:
            self.log(f"resume: epochs changed to {self.cfg.epochs}")
        if p.step_in_epoch and (state.get("world_size") != self.ctx.world_size
                                or state.get("steps_per_epoch") != self.steps_per_epoch):
            self.log("resume: the number of processes changed mid-epoch; restarting the epoch")
            p.global_step -= p.step_in_epoch
            p.reset_epoch_sums()
            p.step_in_epoch = 0
        if not self.ctx.is_main:                  # the saved epoch sums already cover all ranks
            p.epoch_sums, p.epoch_count, p.grad_norm_sum = {}, 0, 0.0
        if state.get("rng") is not None and self.ctx.is_main:
            restore_rng(state["rng"], self.device)
        self.log(f"resumed {self.state_path} at epoch {p.epoch}, "
                 f"step {p.step_in_epoch}/{self.steps_per_epoch} "
                 f"(global step {p.global_step}, {p.elapsed_s / 60:.1f} min trained)")

    # -- output ------------------------------------------------------------------------------
    @property
    def history(self) -> list[dict]:
        return self.records.history

    def log(self, message: str) -> None:
        self.records.log(message)

    def _elapsed(self) -> float:
        return self.progress.elapsed_s + (time.monotonic() - self._run_start)

    def epoch_position(self) -> float:
        return self.progress.epoch + self.progress.step_in_epoch / self.steps_per_epoch

    def save_state(self) -> None:
        """Write the training state atomically (collective: every rank must call it)."""
        sums, count, gsum, gmax = epoch_totals(self.progress, self.ctx, self.device)
        self.progress.elapsed_s = self._elapsed()
        self._run_start = time.monotonic()
        if self.ctx.is_main:
            progress = asdict(self.progress)
            progress.update(epoch_sums=sums, epoch_count=count, grad_norm_sum=gsum, grad_norm_max=gmax)
            write_state(self.state_path, {
                "config": self.cfg.model_dump(mode="json"),
                "model": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "progress": progress,
                "best_state": self.best_state,
                "history": self.history,
                "world_size": self.ctx.world_size,
                "steps_per_epoch": self.steps_per_epoch,
                "rng": capture_rng(self.device),
            })
        self._last_save = time.monotonic()

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self, indices: torch.Tensor) -> float:
        """One optimizer step on the samples ``indices``; returns the batch loss."""
        x, y = self.train_data.batch(indices, self.device)
        step_norms = None
        if self.cfg.step_norm_penalty is None:
            outputs = self.objective.outputs(self.ddp, x)
        else:                                                   # one process (checked in __init__)
            outputs, hinge, step_norms = step_norm_penalty(self.model, x, self.cfg.step_norm_samples)
        loss = self.objective.loss(outputs, y)
        objective = loss if step_norms is None else loss + self.cfg.step_norm_penalty * hinge
        # DDP averages gradients over ranks; a summed loss must be scaled back to the global sum
        scale = self.ctx.world_size if self.objective.reduction == "sum" else 1
        self.optimizer.zero_grad(set_to_none=True)
        (objective * scale if scale != 1 else objective).backward()
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        pendulum_recipe.set_scheduled_lr(self.cfg, self.optimizer, self.progress.global_step,
                                         self.cfg.epochs * self.steps_per_epoch)
        self.optimizer.step()
        with torch.no_grad():
            per_sample = self.objective.per_sample(outputs.detach(), y)
        p = self.progress
        for key, values in per_sample.items():
            p.epoch_sums[key] = p.epoch_sums.get(key, 0.0) + float(values.double().sum())
        if step_norms is not None:                              # the epoch record's train_step_norm
            norm_sum = float(step_norms.mean()) * len(indices)
            p.epoch_sums["step_norm"] = p.epoch_sums.get("step_norm", 0.0) + norm_sum
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
        self.progress.best_epoch = self.epoch_position()
        self.progress.best_step = self.progress.global_step
        self.best_state = {k: v.detach().cpu().clone() for k, v in unwrap(self.model).state_dict().items()}
        return True

    def _checkpoint_record(self, kind: str) -> dict:
        """Validate, update the best model and return the JSONL record (collective)."""
        sums, count, gsum, gmax = epoch_totals(self.progress, self.ctx, self.device)
        train = {f"train_{k}": v / max(count, 1) for k, v in sums.items()}
        val = self.validate()
        improved = self._consider_best(val)
        steps = max(self.progress.step_in_epoch, 1)
        record = {"kind": kind, "epoch": round(self.epoch_position(), 6), "step": self.progress.global_step,
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
        self.records.add_and_log(record)
        self.progress.epoch += 1
        self.progress.step_in_epoch = 0
        self.progress.reset_epoch_sums()
        self.save_state()

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
        self._run_start = self._last_save = time.monotonic()
        self.log(f"run {cfg.name}: {cfg.task} / {cfg.model}, {count_parameters(self.model)} parameters, "
                 f"{len(self.train_data)} train / {len(self.val_data) if self.val_data else 0} val / "
                 f"{len(self.test_data)} test samples, {self.steps_per_epoch} steps per epoch, "
                 f"device {self.device}, {self.ctx.world_size} process(es), "
                 f"{torch.get_num_threads()} thread(s), recurrence {self.recurrence}")
        show_bar = self.ctx.is_main and (run.progress if run.progress is not None else sys.stderr.isatty())
        stop_reason = self._budget_spent()     # a resumed run whose budget is already used trains no step
        if stop_reason is not None:
            self.log(f"{stop_reason} before this run started: raise --max-minutes / --max-steps to "
                     "continue")
        while p.epoch < cfg.epochs and stop_reason is None:
            stop_reason = self._train_epoch(show_bar)
            if p.step_in_epoch >= self.steps_per_epoch:
                self._end_epoch()
        if stop_reason is not None:
            self.log(f"stopping: {stop_reason}")
            if p.step_in_epoch:
                record = self._checkpoint_record("stop")
                record["reason"] = stop_reason
                self.records.add_and_log(record)
            self.save_state()
        return self.finish(stop_reason)

    def _train_epoch(self, show_bar: bool) -> str | None:
        """The rest of the current epoch, from its saved step; returns why it stopped early, if it did."""
        cfg, run, p = self.cfg, self.run, self.progress
        self.sampler.set_epoch(p.epoch)
        batches = torch.tensor(list(iter(self.sampler)), dtype=torch.long).split(self.rank_batch)
        bar = tqdm(total=self.steps_per_epoch, initial=p.step_in_epoch, disable=not show_bar,
                   desc=f"epoch {p.epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        window_start, window_steps = time.monotonic(), 0
        stop_reason = None
        for b in range(p.step_in_epoch, self.steps_per_epoch):
            loss = self.train_step(batches[b])
            p.step_in_epoch += 1
            p.global_step += 1
            window_steps += 1
            bar.update(1)
            if show_bar:
                bar.set_postfix(postfix(loss, p), refresh=False)
            if p.global_step % run.log_every == 0:
                if not show_bar:
                    ms = 1000 * (time.monotonic() - window_start) / window_steps
                    post = " ".join(f"{k} {v}" for k, v in postfix(loss, p).items())
                    self.log(f"epoch {p.epoch + 1} step {p.step_in_epoch}/{self.steps_per_epoch} "
                             f"{post} lr {self.optimizer.param_groups[0]['lr']:.3g} {ms:.0f} ms/step "
                             f"elapsed {self._elapsed() / 60:.1f} min")
                window_start, window_steps = time.monotonic(), 0
            mid_epoch = p.step_in_epoch < self.steps_per_epoch
            if cfg.eval_every and p.global_step % cfg.eval_every == 0 and mid_epoch:
                self.records.add_and_log(self._checkpoint_record("eval"))
            reason = (f"non-finite training loss {loss} at step {p.global_step}"
                      if not math.isfinite(loss) else self._budget_spent())
            save_due = time.monotonic() - self._last_save >= 60 * run.checkpoint_minutes
            stop, save = self.ctx.agree(self.device, reason is not None, save_due)
            if stop:
                stop_reason = reason or "another rank stopped"
                break
            if save:
                self.save_state()
        bar.close()
        return stop_reason

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
        if getattr(model, "step_bound", 0.0) > 0.0:   # the bound's scale, folded into the exported weights
            model = model.fold_step_bound().eval()
        test = evaluate(model, self.test_data, self.objective, cfg.eval_batch_size, self.device, self.ctx)
        metrics = {f"test_{k}" if k in ("loss", "accuracy") else k: v for k, v in test.items()}
        metrics["test_samples"] = float(len(self.test_data))
        if self.ctx.is_main:
            self.records.add_and_log({
                "kind": "test", "epoch": round(self.epoch_position(), 6), "step": p.global_step,
                "elapsed_s": round(p.elapsed_s, 3), **metrics,
                "model": "best by validation" if self.best_state is not None else "last"})
        manifest = None
        if self.ctx.is_main:
            manifest = export_torchscript(model, self.out_dir, manifest_fields(self, metrics, stop_reason))
            verify_export(model, self.out_dir / f"{manifest.name}.json", self.test_data,
                          self.objective.every_step)
            plot_learning_curve(self.history, self.curve_path,
                                f"{cfg.name}: {cfg.task} / {cfg.model}, {count_parameters(model)} parameters")
            self.log(f"exported {self.out_dir / manifest.artifact.file} "
                     f"(sha256 {manifest.artifact.sha256[:12]}…), "
                     f"manifest {self.out_dir / (cfg.name + '.json')}, curve {self.curve_path}")
        self.ctx.barrier()
        return manifest


def train(cfg: TrainConfig, run: RunOptions, explicit: set[str] | None = None) -> Manifest | None:
    """Run one training job (single process, or one rank of a torchrun job)."""
    ctx, device = setup_distributed(run.device)
    try:
        return Trainer(cfg, run, ctx, device, explicit).fit()
    finally:
        teardown_distributed(ctx)
