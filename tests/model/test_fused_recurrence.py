"""The fused training recurrence (``FusedEulerRecurrence``) against autograd through the per-step ops:
gradcheck in float64, whole-model gradients for every variant and discretisation, 50 training steps,
a resumed state, and its bf16 GEMMs against the fp32 ones."""

import copy

import pytest
import torch

from model import AFRNN, AFRNNConfig, paper_model
from model.recurrence import euler_recurrence, fused_euler_recurrence

torch.set_num_threads(1)


@pytest.mark.parametrize("steps, batch, width", [(1, 3, 4), (6, 2, 5), (9, 4, 7)])
@pytest.mark.parametrize("keep_states", [False, True])
def test_gradcheck_against_float64_finite_differences(steps, batch, width, keep_states):
    gen = torch.Generator().manual_seed(steps * 100 + width)
    drive = torch.randn(steps, batch, width, dtype=torch.float64, generator=gen, requires_grad=True)
    z0 = torch.randn(batch, width, dtype=torch.float64, generator=gen, requires_grad=True)
    coupling_t = torch.randn(width, width, dtype=torch.float64, generator=gen, requires_grad=True)

    def run(d, z, b):
        last, states = fused_euler_recurrence(d, z, b, 0.3, keep_states, retain=True)
        return (last, torch.stack(states)) if keep_states else last

    # gradcheck backpropagates one graph many times: ``retain`` keeps the saved buffers; the in-place
    # sweep of training is checked against autograd below, to float64 rounding
    assert torch.autograd.gradcheck(run, (drive, z0, coupling_t))


@pytest.mark.parametrize("keep_states", [False, True])
def test_values_and_gradients_equal_the_autograd_recurrence(keep_states):
    gen = torch.Generator().manual_seed(1)
    steps, batch, width = 12, 3, 6
    inputs = [torch.randn(steps, batch, width, dtype=torch.float64, generator=gen),
              torch.randn(batch, width, dtype=torch.float64, generator=gen),
              torch.randn(width, width, dtype=torch.float64, generator=gen)]
    weights = torch.randn(steps, batch, width, dtype=torch.float64, generator=gen)

    def loss_and_grads(fused: bool):
        leaves = [t.clone().requires_grad_() for t in inputs]
        if fused:
            last, states = fused_euler_recurrence(*leaves, 0.2, keep_states)
        else:
            last, states = euler_recurrence(*leaves, 0.2, [0, width], False, keep_states)
        loss = (last ** 2).sum()
        if keep_states:
            loss = loss + sum((w * s).sum() for w, s in zip(weights, states, strict=True))
        loss.backward()
        return [last.detach()] + [s.detach() for s in states] + [leaf.grad for leaf in leaves]

    for fused, reference in zip(loss_and_grads(True), loss_and_grads(False), strict=True):
        torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)


CONFIGS = [
    dict(layer_sizes=(7,)),
    dict(layer_sizes=(5, 9)),
    dict(layer_sizes=(5, 9), feedback="none"),
    dict(layer_sizes=(5, 9), feedback="free"),
    dict(layer_sizes=(4, 6, 3), couplings=((0, 2), (1, 2))),
    dict(layer_sizes=(5, 9), discretisation="imex", epsilon=0.5),
    dict(layer_sizes=(4, 6, 3), discretisation="imex", initial_state=1.0),
]


@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("every_step", [False, True])
def test_model_gradients_equal_the_autograd_path(options, every_step):
    torch.manual_seed(0)
    options = {"input_size": 2, "output_size": 3, "epsilon": 0.1, "gamma": 0.05, **options}
    fused = AFRNN(AFRNNConfig(**options)).double()
    fused.training_path = "fused"
    reference = copy.deepcopy(fused)
    reference.training_path = "autograd"
    x = torch.randn(4, 15, 2, dtype=torch.float64)
    for model in (fused, reference):
        model(x, every_step=every_step).pow(2).sum().backward()
    for (name, p), q in zip(fused.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_a_second_backward_through_one_forward_is_refused():
    drive = torch.randn(5, 2, 3, requires_grad=True)
    last, _ = fused_euler_recurrence(drive, torch.zeros(2, 3), torch.randn(3, 3), 0.1, False)
    loss = last.sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        loss.backward()


def test_an_eager_model_records_plain_autograd_unless_asked():
    """The default path is autograd, so that torch.autograd.functional.jacobian (many backward passes
    through one graph) works on an eager model; the trainer opts in to the fused node."""
    model = paper_model("mnist", "afrnn", discretisation="imex")
    x = torch.randn(1, 6, 1)
    assert model.training_path == "autograd"
    jac = torch.autograd.functional.jacobian(lambda inp: model(inp), x)
    assert jac.shape == (1, 10, 1, 6, 1) and torch.isfinite(jac).all()


def test_sequential_update_falls_back_to_autograd():
    model = AFRNN(AFRNNConfig(layer_sizes=(3, 4), input_size=1, output_size=2, update="sequential"))
    model.training_path = "fused"
    x = torch.randn(2, 5, 1)
    node = model(x).grad_fn
    seen, stack = set(), [node]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    assert not any("FusedEulerRecurrence" in type(fn).__name__ for fn in seen)
    assert any("Tanh" in type(fn).__name__ for fn in seen)


def _train(model: AFRNN, optimizer: torch.optim.Optimizer, batches) -> list[float]:
    losses = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _mnist_shaped_batches(count: int, batch: int = 8, seed: int = 0):
    """Sparse "ink" in [0, 1] on 784 pixel steps, normalised as pixel MNIST is, with random labels."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ink = torch.rand(batch, 784, 1, generator=gen) * (torch.rand(batch, 784, 1, generator=gen) < 0.2)
        batches.append(((ink - 0.1307) / 0.3081, torch.randint(0, 10, (batch,), generator=gen)))
    return batches


@pytest.mark.parametrize("discretisation", ["euler", "imex"])
def test_fifty_mnist_shaped_training_steps_match_autograd(discretisation):
    torch.manual_seed(0)
    options = {} if discretisation == "euler" else {"epsilon": 0.1, "gamma": 0.01}    # paper / IMEX recipe
    fused = paper_model("mnist", "afrnn", discretisation=discretisation, **options)
    fused.training_path = "fused"
    reference = copy.deepcopy(fused)
    reference.training_path = "autograd"
    batches = _mnist_shaped_batches(50)
    losses = [_train(m, torch.optim.Adam(m.parameters(), lr=1e-3), batches) for m in (fused, reference)]
    torch.testing.assert_close(losses[0], losses[1], rtol=2e-4, atol=2e-5)
    assert losses[0][-1] != losses[0][0]                 # it trained


def test_a_state_saved_by_the_autograd_path_resumes_on_the_fused_path():
    torch.manual_seed(0)
    model = paper_model("mnist", "afrnn", discretisation="imex", epsilon=0.1, gamma=0.01)
    model.training_path = "autograd"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = _mnist_shaped_batches(10, seed=3)
    _train(model, optimizer, batches[:5])
    saved = copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict()})

    continued = {}
    for path in ("autograd", "fused"):
        resumed = paper_model("mnist", "afrnn", discretisation="imex", epsilon=0.1, gamma=0.01)
        resumed.load_state_dict(saved["model"])
        resumed.training_path = path
        opt = torch.optim.Adam(resumed.parameters(), lr=1e-3)
        opt.load_state_dict(copy.deepcopy(saved["optimizer"]))     # Adam steps its state in place
        continued[path] = (_train(resumed, opt, batches[5:]), resumed.state_dict())
    torch.testing.assert_close(continued["fused"][0], continued["autograd"][0], rtol=2e-4, atol=2e-5)
    for key, value in continued["autograd"][1].items():
        torch.testing.assert_close(continued["fused"][1][key], value, rtol=1e-3, atol=1e-5, msg=key)


def test_bf16_gemms_give_the_fp32_gradients_to_bf16_precision():
    torch.manual_seed(0)
    model = paper_model("mnist", "afrnn", discretisation="imex", epsilon=0.1, gamma=0.01)
    (x, y), = _mnist_shaped_batches(1, batch=32)
    grads = {}
    for path in ("fused", "fused-bf16"):
        model.zero_grad(set_to_none=True)
        model.training_path = path
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads[path] = torch.cat([p.grad.flatten() for p in model.parameters()])
    cosine = torch.nn.functional.cosine_similarity(grads["fused"], grads["fused-bf16"], dim=0)
    relative = (grads["fused"] - grads["fused-bf16"]).norm() / grads["fused"].norm()
    assert cosine > 0.999
    assert 0 < relative < 0.03           # not identical (the GEMMs did run in bf16), but close


def test_exported_models_do_not_take_the_training_path():
    """A scripted model runs ``euler_recurrence`` in fp32 even where gradients are recorded (the fused
    node is ``torch.jit.unused``), whatever path its eager original trained on."""
    model = paper_model("mnist", "afrnn", discretisation="imex")
    model.training_path = "fused-bf16"
    scripted = torch.jit.script(model.eval())
    model.training_path = "autograd"
    x = torch.randn(2, 20, 1)
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-6)
    assert scripted(x).grad_fn is not None


def test_auto_recurrence_takes_bf16_only_where_the_cpu_has_a_bf16_dot_product():
    from training.components import training_recurrence
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    zen4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
    sapphire_rapids = frozenset({"avx512f", "amx_bf16", "amx_tile"})
    zen1 = frozenset({"avx2", "fma"})
    assert training_recurrence("auto", cpu, zen4) == "fused-bf16"
    assert training_recurrence("auto", cpu, sapphire_rapids) == "fused-bf16"
    assert training_recurrence("auto", cpu, zen1) == "fused"
    assert training_recurrence("auto", cuda, zen4) == "fused"
    assert training_recurrence("autograd", cpu, zen4) == "autograd"
    assert training_recurrence("fused", cpu, zen4) == "fused"
