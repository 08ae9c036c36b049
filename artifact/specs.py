"""The input and output specs each task writes into its manifest (``Manifest.input`` / ``.output``).

One place for what a served model of each task expects and returns: the image normalisation
constants (the paper's protocols; docs/results.md, "Protocols"), the class names, and the pendulum's
state names, units and time step (``physics.pendulum``). ``training`` builds manifests from these
functions and the test fixtures build theirs from the same functions, so the two cannot drift.
"""

from physics.encoding import PAPER_ENCODING, PLACEHOLDER
from physics.pendulum import DT, INITIAL_RANGE, STATE_NAMES, STATE_UNITS

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
MNIST_CLASS_NAMES = tuple(str(d) for d in range(10))
MNIST_LAYOUT = ("row-major pixels, 1 grey value per step (28x28 -> 784 x 1); scale uint8 by 1/255, "
                "then (x - mean) / std")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
CIFAR10_LAYOUT = ("row-major pixels, RGB values of one pixel per step (32x32 -> 1024 x 3); scale uint8 "
                  "by 1/255, then (x - mean_c) / std_c per channel")


def image_input_spec(sequence_length: int, channels: int, mean, std, layout: str) -> dict:
    """``Manifest.input`` fields of a pixel-by-pixel image task (values scaled to [0, 1], then normalised)."""
    return dict(sequence_length=sequence_length, channels=channels, layout=layout,
                normalization_mean=list(mean), normalization_std=list(std),
                value_range=(0.0, 1.0), units="intensity")


def mnist_input_spec() -> dict:
    return image_input_spec(784, 1, MNIST_MEAN, MNIST_STD, MNIST_LAYOUT)


def cifar10_input_spec() -> dict:
    return image_input_spec(1024, 3, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_LAYOUT)


def classes_output_spec(class_names) -> dict:
    """``Manifest.output`` fields of a classifier."""
    return dict(kind="classes", class_names=list(class_names))


def pendulum_input_spec(sequence_length: int = 29, encoding: str | None = None) -> dict:
    """``Manifest.input`` fields of the pendulum protocol (``physics.encoding``; ``encoding`` None is
    the paper's) over T steps."""
    low, high = INITIAL_RANGE
    state = "the initial state [theta1, theta2, omega1, omega2] (rad, rad/s)"
    if encoding in (None, PAPER_ENCODING):
        layout = (f"step 0: {state}; steps 1..{sequence_length - 1}: the constant {PLACEHOLDER} in all "
                  f"four inputs; output step t predicts the state at time (t + 1)·dt")
    else:
        layout = (f"steps 0..{sequence_length - 1}: {state}, the same at every step; output step t "
                  f"predicts the state at time (t + 1)·dt")
    spec = dict(sequence_length=sequence_length, channels=4, layout=layout,
                normalization_mean=[0.0] * 4, normalization_std=[1.0] * 4,
                value_range=(low, high), units="radians",
                initial_state_names=list(STATE_NAMES))
    if encoding not in (None, PAPER_ENCODING):    # absent means the paper's (manifests before the option)
        spec["encoding"] = encoding
    return spec


def pendulum_output_spec() -> dict:
    """``Manifest.output`` fields of a pendulum model: the four states, their units, and dt."""
    return dict(kind="states", state_names=list(STATE_NAMES), units=list(STATE_UNITS), dt=DT)
