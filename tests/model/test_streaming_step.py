"""Streams: advancing the state chunk by chunk (``initial_state`` → ``advance`` … → ``readout``) equals
``forward`` on the whole sequence, for every variant, eager and after a TorchScript export round trip."""

import dataclasses
import random

import pytest
import torch

from artifact.export import export_torchscript, load_exported
from model import count_parameters, paper_model

torch.set_num_threads(1)

VARIANTS = [
    ("mnist", "afrnn", {}),
    ("mnist", "frnn", {}),
    ("mnist", "2-arnn", {}),
    ("mnist", "arnn", {}),
    ("mnist", "afrnn", {"update": "sequential"}),
    ("pendulum", "afrnn", {}),                      # z_0 = 1, four input channels
    ("mnist", "lstm", {}),
]


def small(task: str, variant: str, overrides: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if variant == "lstm":
        return paper_model(task, variant, hidden_size=12).eval()
    sizes = (9,) if variant == "arnn" else (6, 7)
    return paper_model(task, variant, layer_sizes=sizes, epsilon=0.2, gamma=0.05, **overrides).eval()


def random_chunks(steps: int, rng: random.Random) -> list[int]:
    """Chunk lengths ≥ 1 summing to ``steps``, mixing single steps and long runs."""
    lengths = []
    while steps:
        n = min(steps, rng.choice([1, 1, 2, 3, rng.randint(1, 40)]))
        lengths.append(n)
        steps -= n
    return lengths


def streamed(module, x: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Final readout and the readout after each chunk, advancing chunk by chunk."""
    z = module.initial_state(x.shape[0])
    outputs, start = [], 0
    for n in lengths:
        z = module.advance(z, x[:, start:start + n])
        start += n
        outputs.append(module.readout(z))
    return outputs[-1], outputs


@pytest.mark.parametrize("task,variant,overrides", VARIANTS)
def test_advance_in_random_chunks_equals_forward(task, variant, overrides):
    model = small(task, variant, overrides)
    channels = 4 if task == "pendulum" else 1
    x = torch.randn(3, 97, channels)
    rng = random.Random(f"{task}-{variant}-{overrides}")
    with torch.no_grad():
        whole = model(x)
        per_step = model(x, None, True)
        for _ in range(3):
            lengths = random_chunks(x.shape[1], rng)
            final, outputs = streamed(model, x, lengths)
            torch.testing.assert_close(final, whole, atol=1e-5, rtol=0)
            ends = torch.tensor(lengths).cumsum(0) - 1             # anytime output after each chunk
            torch.testing.assert_close(torch.stack(outputs, 1), per_step[:, ends], atol=1e-5, rtol=0)


@pytest.mark.parametrize("task,variant,overrides", VARIANTS)
def test_exported_module_streams_like_its_forward(task, variant, overrides, tmp_path):
    """The TorchScript artifact carries ``initial_state``/``advance``/``readout`` and they agree with
    the eager ``forward`` (the oracle) on the whole sequence."""
    from artifact import specs

    model = small(task, variant, overrides, seed=1)
    if task == "pendulum":
        input_spec, output = specs.pendulum_input_spec(29), specs.pendulum_output_spec()
    else:
        input_spec, output = specs.mnist_input_spec(), specs.classes_output_spec(specs.MNIST_CLASS_NAMES)
    fields = dict(name="m", version="0", task=task,
                  architecture=dict(family="lstm" if variant == "lstm" else "afrnn", variant=model.variant,
                                    config=dataclasses.asdict(model.config)),
                  parameters=count_parameters(model), input=input_spec, output=output,
                  training=dict(epochs=0.0, wall_time_s=0.0, hardware="none", command="pytest"),
                  dataset_hash="none", code_version="test", torch_version=torch.__version__)
    export_torchscript(model, tmp_path, fields)
    module, _ = load_exported(tmp_path / "m.json")
    channels = 4 if task == "pendulum" else 1
    x = torch.randn(2, 61, channels)
    with torch.no_grad():
        whole = model(x)
        for seed in range(2):
            final, _ = streamed(module, x, random_chunks(x.shape[1], random.Random(seed)))
            torch.testing.assert_close(final, whole, atol=1e-5, rtol=0)


def test_advance_rejects_a_chunk_of_the_wrong_width():
    model = small("mnist", "afrnn", {})
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, steps, 1\), got \[1, 3, 2\]"):
        model.advance(model.initial_state(1), torch.zeros(1, 3, 2))
