"""Training losses and per-sample metrics of the two kinds of task.

Classification (pixel MNIST, pixel CIFAR-10): the readout at the last step gives logits; the loss is
the mean cross-entropy over the batch (the paper's "cross-entropy between the softmax output and the
one-hot target"). Per sample: ``loss`` (cross-entropy) and ``accuracy`` (1 if the arg-max is right).

Trajectory regression (double pendulum): the readout at every step predicts the next state; the loss
is the reference code's ``MSELoss(reduction='sum')``, the squared error summed over batch, steps and
state variables. Per sample: ``loss`` (that sum for one trajectory) and ``mse_rad2`` (its mean over
the 29 × 4 values; the ω entries are in rad/s, so "rad²" is shorthand). Evaluation adds the paper's
Table 3 metric, the summed loss averaged over consecutive test batches of 8 (``paper_metric``).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAPER_EVAL_BATCH = 8


class ClassificationObjective:
    every_step = False
    reduction = "mean"
    selection = ("accuracy", "max")       # the validation metric that picks the exported model
    schedule_metric = "loss"              # what ReduceLROnPlateau watches (minimised)

    def outputs(self, model: nn.Module, x: Tensor) -> Tensor:
        return model(x)                                                   # (B, classes)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def per_sample(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(outputs, targets, reduction="none"),
                "accuracy": (outputs.argmax(dim=1) == targets).float()}

    def summarise(self, per_sample: dict[str, Tensor]) -> dict[str, float]:
        return {key: float(values.double().mean()) for key, values in per_sample.items()}


class TrajectoryObjective:
    every_step = True
    reduction = "sum"
    selection = ("mse_rad2", "min")
    schedule_metric = "mse_rad2"

    def outputs(self, model: nn.Module, x: Tensor) -> Tensor:
        return model(x, every_step=True)                                  # (B, T, state)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(outputs, targets, reduction="sum")

    def per_sample(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        squared = (outputs - targets).pow(2).flatten(1)
        return {"loss": squared.sum(dim=1), "mse_rad2": squared.mean(dim=1)}

    def summarise(self, per_sample: dict[str, Tensor]) -> dict[str, float]:
        metrics = {key: float(values.double().mean()) for key, values in per_sample.items()}
        sums = per_sample["loss"].double()
        batch_sums = torch.stack([chunk.sum() for chunk in sums.split(PAPER_EVAL_BATCH)])
        metrics["paper_metric"] = float(batch_sums.mean())
        return metrics
