"""The checkpoint manifest: everything the service needs to serve an exported model, and nothing it
must guess. One JSON file per artifact, next to it (``<name>.json`` beside ``<name>.pt``).

This schema is shared by ``artifact.export`` (which writes it) and ``service`` (which reads it).
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_SCHEMA_VERSION = 1

Task = Literal["pendulum", "mnist", "cifar10"]
Variant = Literal["arnn", "2-arnn", "frnn", "afrnn", "lstm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Architecture(_Strict):
    family: Literal["afrnn", "lstm"]        # which class: model.AFRNN or model.LSTMBaseline
    variant: Variant
    config: dict[str, Any]                  # the dataclass fields of AFRNNConfig / LSTMConfig


class InputSpec(_Strict):
    sequence_length: int = Field(gt=0, description="steps per sequence (784, 1024, 29)")
    channels: int = Field(gt=0, description="values per step (1 MNIST, 3 CIFAR-10, 4 pendulum)")
    layout: str = Field(description="how a sample maps to steps, e.g. 'row-major pixels'")
    normalization_mean: list[float] = Field(description="per-channel mean subtracted after scaling")
    normalization_std: list[float] = Field(description="per-channel std divided after scaling")
    value_range: tuple[float, float] = Field(description="valid raw values after scaling to [0, 1] "
                                                         "(images) or in `units` (pendulum)")
    units: str = Field(description="'intensity' for images, 'radians' for the pendulum state")
    initial_state_names: list[str] | None = None     # pendulum: theta1, theta2, omega1, omega2
    encoding: Literal["initial-then-placeholder", "initial-every-step"] | None = Field(
        None, description="pendulum: how the initial state enters the input sequence "
                          "(physics.encoding); absent: 'initial-then-placeholder', the paper's")


# A model's *kind*: what it outputs, class logits ("classes") or predicted physical states ("states").
# It alone decides which inference endpoints serve the model (/classify and the streams for "classes",
# /pendulum/* for "states"); `Manifest.task` is a different thing, the problem it was trained on.
OutputKind = Literal["classes", "states"]


class OutputSpec(_Strict):
    kind: OutputKind                        # the model's kind (OutputKind above)
    class_names: list[str] | None = None
    state_names: list[str] | None = None
    units: list[str] | None = None          # per state variable (rad, rad, rad/s, rad/s)
    dt: float | None = None                 # seconds between predicted states
    # states: the network outputs (s − offset) / scale per state variable; a server returns
    # output · scale + offset (absent: the outputs are the states themselves)
    offset: list[float] | None = None
    scale: list[float] | None = None
    # states: what the model was trained on (absent in manifests written before these fields)
    trained_horizon_s: float | None = Field(None, gt=0, description="seconds of trajectory seen in training")
    training_data: str | None = None        # e.g. '1000 trajectories (900 train), 30 points at dt 0.1 s'


class TrainingRecord(_Strict):
    epochs: float
    wall_time_s: float
    hardware: str
    command: str
    hyperparameters: dict[str, Any] = {}


class Artifact(_Strict):
    file: str                               # path relative to the manifest's directory
    format: Literal["torchscript"] = "torchscript"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int


class Manifest(_Strict):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="served model name")
    version: str
    description: str | None = Field(None, max_length=500,
                                    description="what the model is and what it is for, for the people who "
                                                "pick one (GET /models, the demo page)")
    task: Task
    architecture: Architecture
    parameters: int
    input: InputSpec
    output: OutputSpec
    metrics: dict[str, float] = {}          # on the full test split, e.g. test_accuracy
    training: TrainingRecord
    dataset_hash: str
    code_version: str                       # git commit of the code that trained it
    torch_version: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    artifact: Artifact
