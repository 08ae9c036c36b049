"""The resolved training configuration: one validated source for a run, saved in its training state.

``TrainConfig`` holds what defines the experiment (task, model, hyperparameters, data selection);
``RunOptions`` holds how this invocation runs it (device, threads, budget, output), which may change
when a run is resumed.

Defaults: a value a run does not give comes from ``training.presets`` (``DEFAULTS[task]``, then
``PAPER[task]`` with ``preset='paper'``) for the settings that differ per task, else from the field's
default below. Task and variant names are ``artifact.manifest.Task`` / ``Variant``.
"""

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from artifact.manifest import Task, Variant
from model.afrnn import AFRNNConfig
from model.lstm import LSTMConfig
from model.paper import paper_config
from training.presets import Preset, ReferenceInit, preset_values

MODEL_ONLY_AFRNN = ("epsilon", "gamma", "init_std", "update")


class ConfigError(ValueError):
    """A run configuration that cannot be used (e.g. a resumed run asked to change its model)."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: Task
    model: Variant = "afrnn"
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$",
                      description="served model name (default: the task for afrnn, else <task>-<model>)")
    description: str | None = Field(None, max_length=500,
                                    description="one or two sentences on what the model is for, written "
                                                "into its manifest (shown by GET /models)")
    preset: Preset | None = None
    # Fields without a default here take it per task from training.presets (see _task_defaults).
    # architecture (None: the paper configuration of the task/variant decides)
    hidden_size: int | None = Field(None, ge=1)
    layers: int | None = Field(None, ge=1)
    epsilon: float | None = Field(gt=0)                 # None for the LSTM
    gamma: float | None = Field(ge=0)                   # None for the LSTM
    init_std: float | None = Field(gt=0)                # None for the LSTM
    update: Literal["simultaneous", "sequential"] = "simultaneous"
    damping: Literal["fixed", "euler"] = Field(
        "fixed", description="AFRNN family: 'euler' makes γ follow the coupling (model.afrnn.euler_damping)")
    step_bound: float | None = Field(
        None, gt=0, description="AFRNN family: a bound β on ε‖A‖₂ (model.afrnn.AFRNN.coupling_scale); "
                                "exports fold it into the weights")
    discretisation: Literal["euler", "imex"] = Field(
        "euler", description="AFRNN family: the paper's explicit-Euler step, or 'imex': the linear part by "
                             "the trapezoidal rule, a step radius ≤ 1 for every ε (model.afrnn)")
    step_norm_penalty: float | None = Field(
        None, gt=0, description="AFRNN family: weight of the penalty mean max(0, ‖I + ε D_t B‖₂ − 1)² at "
                                "sampled steps (training.step_penalty); training only")
    step_norm_samples: int = Field(4, ge=1, description="(row, step) pairs per batch for step_norm_penalty")
    # optimisation
    optimizer: Literal["adagrad", "adam"]
    lr: float = Field(gt=0)
    lr_schedule: Literal["none", "plateau", "cosine"]
    plateau_patience: int = Field(ge=0)
    plateau_factor: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    grad_clip: float | None = Field(gt=0)               # None: no clipping
    seed: int = 0
    # the pendulum's training levers (training.pendulum_recipe); the defaults change nothing
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (AdamW)")
    init: Literal["default", "notebook"] = "default"
    init_from: str | None = Field(
        None, description="start a new run from these weights: an exported model's manifest (<name>.json) "
                          "or a training state (<name>.train.pt) of the same architecture")
    standardize: bool = Field(False, description="pendulum: standardised initial state and targets")
    loss_weights: tuple[float, float, float, float] | None = Field(
        None, description="pendulum: per-variable loss weights (theta1, theta2, omega1, omega2)")
    pendulum_input: Literal["initial-then-placeholder", "initial-every-step"] | None = Field(
        None, description="pendulum: how s0 enters the input sequence (physics.encoding); "
                          "unset: the paper's initial-then-placeholder")
    # data
    val_size: int = Field(ge=0)
    limit_train: int | None = Field(None, ge=1)
    limit_test: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    eval_every: int = Field(0, ge=0, description="also validate every N steps (0: once per epoch)")
    data_dir: str | None = None
    cache_dir: str | None = None
    trajectories: int | None = Field(None, ge=10, description="pendulum: generate N trajectories "
                                     "(paper: 1000), the first 90 % train and the rest test")
    points: int | None = Field(None, ge=2, description="pendulum: points per trajectory at dt 0.1 s "
                               "(paper: 30, i.e. 29 predicted steps)")
    data_seed: int | None = Field(None, ge=0, description="pendulum: seed of the initial states (standard "
                                  "set: 2022; a larger set with it would train on the standard test)")
    solver: Literal["each", "joint"] | None = Field(None, description="pendulum: integrate each trajectory "
                                                    "alone, or each chunk as one system (physics.pendulum)")

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """Fill what is not given from the task's defaults and preset (``training.presets``), name the
        run, and resolve the reference init (std 1/H) at the model's width."""
        if not isinstance(data, dict) or data.get("task") not in get_args(Task):
            return data                 # field validation names the problem
        task, preset = data["task"], data.get("preset")
        model = data.get("model", cls.model_fields["model"].default)
        values = data
        if model in get_args(Variant) and preset in (None, *get_args(Preset)):
            values = {**preset_values(task, preset, model), **data}
            values.setdefault("name", default_name(task, model))
            if "discretisation" not in data and values.get("update") == "sequential":
                values["discretisation"] = "euler"      # a tabled IMEX has no layer-by-layer form
        init = values.get("init_std")
        if isinstance(init, ReferenceInit):
            hidden = values.get("hidden_size")
            width = hidden if isinstance(hidden, int) else paper_config(task, model).layer_sizes[0]
            values["init_std"] = init.init_std(width)
        return values

    @model_validator(mode="after")
    def _check_model_fields(self):
        if self.model == "lstm":
            given = [key for key in MODEL_ONLY_AFRNN if key != "update" and getattr(self, key) is not None]
            if self.damping != "fixed":
                given.append("damping")
            if self.step_bound is not None:
                given.append("step_bound")
            if self.discretisation != "euler":
                given.append("discretisation")
            if self.step_norm_penalty is not None:
                given.append("step_norm_penalty")
            if given:
                raise ValueError(f"{', '.join(given)} apply to the AFRNN family only, not to model 'lstm'")
        for key in ("trajectories", "points", "data_seed", "solver", "loss_weights", "pendulum_input"):
            if getattr(self, key) is not None and self.task != "pendulum":
                raise ValueError(f"{key} applies to the pendulum task only, not to {self.task!r}")
        if self.standardize and self.task != "pendulum":
            raise ValueError(f"standardize applies to the pendulum task only, not to {self.task!r}")
        if self.loss_weights is not None and (min(self.loss_weights) < 0 or max(self.loss_weights) <= 0):
            raise ValueError(f"loss_weights must be >= 0 and not all 0, got {list(self.loss_weights)}")
        if self.init == "notebook" and self.model == "lstm":
            raise ValueError("init 'notebook' applies to the AFRNN family only, not to model 'lstm'")
        if self.step_norm_penalty is not None and self.task == "pendulum":
            raise ValueError("step_norm_penalty applies to the classification tasks (it reads the last "
                             "step's readout), not to 'pendulum'")
        if self.step_norm_penalty is not None and self.update != "simultaneous":
            raise ValueError("step_norm_penalty takes the Jacobian I + ε D_t B of the simultaneous update; "
                             f"got update {self.update!r}")
        if self.discretisation == "imex" and self.update != "simultaneous":
            raise ValueError("discretisation 'imex' solves for the whole state at once; the sequential "
                             "(layer-by-layer) update has no such form")
        if self.model == "arnn" and self.layers not in (None, 1):
            raise ValueError(f"layers: the ARNN has exactly 1 layer, got {self.layers}")
        if self.model in ("2-arnn", "frnn") and self.layers == 1:
            raise ValueError(f"layers: model {self.model!r} needs at least 2 layers, got 1")
        return self

    def model_config_object(self) -> AFRNNConfig | LSTMConfig:
        """The model library's config for this run (paper configuration + the overrides set here)."""
        overrides: dict[str, Any] = {}
        if self.model == "lstm":
            if self.hidden_size is not None:
                overrides["hidden_size"] = self.hidden_size
            if self.layers is not None:
                overrides["num_layers"] = self.layers
            return paper_config(self.task, self.model, **overrides)
        base = paper_config(self.task, self.model)
        if self.hidden_size is not None or self.layers is not None:
            width = self.hidden_size if self.hidden_size is not None else base.layer_sizes[0]
            depth = self.layers if self.layers is not None else len(base.layer_sizes)
            overrides["layer_sizes"] = (width,) * depth
        for key in ("epsilon", "gamma", "init_std"):
            if getattr(self, key) is not None:
                overrides[key] = getattr(self, key)
        overrides["update"] = self.update
        overrides["damping"] = self.damping
        overrides["step_bound"] = self.step_bound
        overrides["discretisation"] = self.discretisation
        return paper_config(self.task, self.model, **overrides)


class RunOptions(BaseModel):
    """How this invocation runs (may differ between a run and its resumption)."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path = Path("checkpoints")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="total training wall time, across resumes")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps in total")
    resume: bool = False
    recurrence: Literal["auto", "autograd", "fused", "fused-bf16"] = Field(
        "auto", description="AFRNN family, simultaneous update: how the training recurrence runs "
                            "(model.afrnn.TRAINING_PATHS; auto: fused-bf16 on a CPU with bf16 "
                            "instructions, else fused); the sequential update always runs autograd")
    checkpoint_minutes: float = Field(5.0, gt=0)
    log_every: int = Field(50, ge=1)
    progress: bool | None = None       # tqdm bars: None = only on a terminal
    command: str = ""


def default_name(task: str, model: str) -> str:
    """The served name: the task for the AFRNN ('mnist'), else '<task>-<model>' ('mnist-frnn')."""
    return task if model == "afrnn" else f"{task}-{model}"

