"""The block recurrence against an independent per-layer implementation of eqs. 6–7, Theorem 3,
the paper's parameter counts, gradient flow and TorchScript parity."""

import io
import itertools
import random

import pytest
import torch

from model import AFRNN, PAPER_PARAMETER_COUNTS, AFRNNConfig, count_parameters, paper_model
from model.paper import INCONSISTENT_PAPER_COUNTS, PAPER_TASKS, VARIANTS

torch.set_num_threads(1)


def naive_afrnn(model: AFRNN, x: torch.Tensor, h0: torch.Tensor, sequential: bool = False):
    """Eqs. 6–7 written layer by layer from the raw parameters, without the block matrix B.

        gⁿ_{t+1} = gⁿ_t + ε tanh((Rₙ − Rₙᵀ − γI) gⁿ_t + Σ_m Cⁿᵐ gᵐ_t + [n = 1] E x_t + bₙ)

    where Cⁿᵐ = W (m below n), −Wᵀ / F / 0 (m above n). Returns the states z_1 … z_T, (N, T, D).
    """
    sizes = model.layer_sizes
    eps, gamma = model.epsilon, model.gamma
    g = list(torch.split(h0, sizes, dim=1))
    own = [layer.weight_rec - layer.weight_rec.t() - gamma * torch.eye(s, dtype=x.dtype)
           for layer, s in zip(model.layers, sizes, strict=True)]
    incoming = {n: [] for n in range(len(sizes))}          # n ← (m, matrix)
    for c in model.couplings:
        incoming[c.upper].append((c.lower, c.weight_ff))
        if model.feedback == "antisymmetric":
            incoming[c.lower].append((c.upper, -c.weight_ff.t()))
        elif model.feedback == "free":
            incoming[c.lower].append((c.upper, c.weight_fb))
    out = []
    for t in range(x.shape[1]):
        source = g                        # simultaneous: every layer reads z_t
        new = list(g)
        for n in range(len(sizes)):
            if sequential:
                source = new              # sequential: layers below are already updated
            pre = source[n] @ own[n].t() + model.layers[n].bias
            for m, matrix in incoming[n]:
                pre = pre + source[m] @ matrix.t()
            if n == 0:
                pre = pre + x[:, t] @ model.weight_in.t()
            new[n] = source[n] + eps * torch.tanh(pre)
        g = new
        out.append(torch.cat(g, dim=1))
    return torch.stack(out, dim=1)


CASES = [
    ((7,), None, "antisymmetric"),
    ((5, 9), None, "antisymmetric"),
    ((5, 9), None, "none"),
    ((5, 9), None, "free"),
    ((4, 6, 3), ((0, 2), (1, 2)), "antisymmetric"),          # non-consecutive couplings
    ((4, 6, 3), ((0, 1), (0, 2)), "free"),
    ((3, 8, 5, 6), ((0, 1), (1, 2), (2, 3), (0, 3)), "antisymmetric"),
    ((3, 8, 5, 6), ((0, 2), (1, 3)), "none"),
]


@pytest.mark.parametrize("sequential", [False, True], ids=["simultaneous", "sequential"])
@pytest.mark.parametrize("sizes,couplings,feedback", CASES)
def test_block_recurrence_equals_per_layer_equations(sizes, couplings, feedback, sequential):
    torch.manual_seed(0)
    cfg = AFRNNConfig(input_size=3, layer_sizes=sizes, output_size=2, couplings=couplings,
                      feedback=feedback, epsilon=0.3, gamma=0.05, init_std=2.0,
                      update="sequential" if sequential else "simultaneous")
    model = AFRNN(cfg).double()
    x = torch.randn(4, 50, 3, dtype=torch.float64)
    h0 = torch.randn(4, sum(sizes), dtype=torch.float64)
    with torch.no_grad():
        _, states = model.forward_with_states(x, h0)
        expected = naive_afrnn(model, x, h0, sequential)
        readout = model(x, h0)
    assert torch.allclose(states[:, 0], h0)
    assert (states[:, 1:] - expected).abs().max().item() < 1e-6
    # the readout is the head applied to the top layer of the last state
    top = expected[:, -1, sum(sizes[:-1]):]
    assert torch.allclose(readout, model.head(top), atol=1e-10)


def test_simultaneous_and_sequential_differ():
    """The two schemes are different maps once layers are coupled (guards the option)."""
    torch.manual_seed(1)
    a = AFRNN(AFRNNConfig(input_size=1, layer_sizes=(6, 6), output_size=2, epsilon=0.5, init_std=2.0))
    b = AFRNN(AFRNNConfig(input_size=1, layer_sizes=(6, 6), output_size=2, epsilon=0.5, init_std=2.0,
                          update="sequential"))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 10, 1)
    assert (a(x) - b(x)).abs().max() > 1e-4


def _continuous_jacobian_eigvals(model: AFRNN, x: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of D_t B at every step, with D_t from the per-layer pre-activations."""
    with torch.no_grad():
        _, states = model.forward_with_states(x)
        B = model.coupling_matrix()
        drive = model.input_drive(x)
        pre = states[:, :-1] @ B.t() + drive              # (N, T, D)
        d = 1 - torch.tanh(pre) ** 2
        jac = d.unsqueeze(-1) * B                          # D_t B, (N, T, D, D)
        return torch.linalg.eigvals(jac)


def test_theorem3_afrnn_spectrum_is_imaginary_for_any_depth_widths_and_couplings():
    rng = random.Random(3)
    for trial in range(6):
        n_layers = rng.randint(2, 5)
        sizes = tuple(rng.randint(2, 9) for _ in range(n_layers))
        all_pairs = list(itertools.combinations(range(n_layers), 2))
        couplings = tuple(rng.sample(all_pairs, rng.randint(1, len(all_pairs))))
        torch.manual_seed(trial)
        with pytest.warns(UserWarning, match="gamma = 0"):
            cfg = AFRNNConfig(input_size=2, layer_sizes=sizes, output_size=3, couplings=couplings,
                              feedback="antisymmetric", gamma=0.0, epsilon=0.2, init_std=3.0)
        model = AFRNN(cfg).double()
        lam = _continuous_jacobian_eigvals(model, torch.randn(2, 30, 2, dtype=torch.float64) * 3)
        assert lam.real.abs().max().item() <= 1e-5, (sizes, couplings)


def test_frnn_with_random_weights_has_unstable_eigenvalues():
    torch.manual_seed(0)
    model = AFRNN(AFRNNConfig(input_size=2, layer_sizes=(8, 8), output_size=3, feedback="free",
                              gamma=0.001, init_std=2.0)).double()
    lam = _continuous_jacobian_eigvals(model, torch.randn(1, 20, 2, dtype=torch.float64))
    assert lam.real.max().item() > 1e-2


def test_symmetric_part_of_B_is_minus_gamma_for_antisymmetric_variants():
    for variant in ("arnn", "afrnn"):
        model = paper_model("mnist", variant)
        B = model.coupling_matrix().detach().double()
        sym = (B + B.t()) / 2
        assert torch.allclose(sym, -model.gamma * torch.eye(B.shape[0], dtype=B.dtype), atol=1e-7)


@pytest.mark.parametrize("task,variant", sorted(PAPER_PARAMETER_COUNTS))
def test_parameter_counts_match_the_paper(task, variant):
    assert count_parameters(paper_model(task, variant)) == PAPER_PARAMETER_COUNTS[(task, variant)]


def test_thirteen_paper_cells_and_the_documented_inconsistency():
    assert len(PAPER_PARAMETER_COUNTS) == 13
    # The paper's 44000 for the 200-unit pendulum ARNN does not follow from its own counting rule;
    # we build the 200-unit ARNN (41804 by that rule) and document the cell instead of asserting it.
    assert set(INCONSISTENT_PAPER_COUNTS) == {("pendulum", "arnn")}
    assert paper_model("pendulum", "arnn").layer_sizes == [200]


def test_pendulum_config_starts_from_all_ones():
    model = paper_model("pendulum", "afrnn")
    assert torch.equal(model.initial_state(2), torch.ones(2, 200))
    assert model.epsilon == 0.1 and model.gamma == 0.15


def test_gradient_reaches_the_first_input_over_784_steps():
    torch.manual_seed(0)
    model = paper_model("mnist", "afrnn", epsilon=0.1, gamma=0.01, init_std=2.0)
    x = torch.randn(1, 784, 1, requires_grad=True)
    model(x)[0, 3].backward()
    g = x.grad[0, 0, 0]
    assert torch.isfinite(g) and g.abs().item() > 1e-8


@pytest.mark.parametrize("task", sorted(PAPER_TASKS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_torchscript_roundtrip_matches_eager(task, variant):
    torch.manual_seed(0)
    extra = {} if variant == "lstm" else {"layer_sizes": (16,) if variant == "arnn" else (16, 12)}
    model = paper_model(task, variant, **extra).eval()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = torch.randn(3, 25, PAPER_TASKS[task].input_size)
    h0 = torch.randn(3, model.state_size) * 0.1
    with torch.no_grad():
        assert (model(x) - loaded(x)).abs().max() <= 1e-6
        assert (model(x, h0, True) - loaded(x, h0, True)).abs().max() <= 1e-6
        ys_e, st_e = model.forward_with_states(x, h0)
        ys_l, st_l = loaded.forward_with_states(x, h0)
        assert (st_e - st_l).abs().max() <= 1e-6 and (ys_e - ys_l).abs().max() <= 1e-6
        # every-step readout agrees with the last-step readout at the end
        assert (ys_l[:, -1] - loaded(x, h0)).abs().max() <= 1e-6
    assert loaded.variant == variant and loaded.state_size == model.state_size


@pytest.mark.parametrize("discretisation", ["euler", "imex"])
def test_fixed_weights_answer_as_the_weights_do_until_they_change(discretisation):
    """``fix_weights`` holds B and B̃ for a served model: every method answers as before, bit for bit,
    in the exported module too; the initial state is still a new tensor per call;
    the state Jacobian still flows (the stability report); after a weight change the held B̃ is stale
    until fixed again."""
    torch.manual_seed(0)
    model = AFRNN(AFRNNConfig(input_size=4, layer_sizes=(6, 5), output_size=4, epsilon=0.5,
                              initial_state=1.0, discretisation=discretisation)).eval()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x, z = torch.randn(3, 9, 4), torch.randn(3, 11)
    for module in (model, loaded):
        with torch.no_grad():
            before = (module(x, None, True), module.readout(z), module.advance(z, x), module.step_coupling(),
                      module.coupling_matrix(), module.initial_state(3))
            module.fix_weights()
            after = (module(x, None, True), module.readout(z), module.advance(z, x), module.step_coupling(),
                     module.coupling_matrix(), module.initial_state(3))
            module.initial_state(3).add_(1.0)                 # a caller's in-place update stays its own
            assert torch.equal(module.initial_state(3), before[-1])
        assert module.fixed_step_coupling is not None and module.fixed_coupling_matrix is not None
        assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
        z_in = z.clone().requires_grad_(True)
        module.step(z_in, torch.zeros(3, 11)).sum().backward()
        assert z_in.grad is not None and torch.isfinite(z_in.grad).all()
    held = model.fixed_step_coupling
    with torch.no_grad():
        model.layers[0].weight_rec.mul_(2.0)
        assert model.step_coupling() is held                  # stale until fixed again
        model.fix_weights()
        refixed = model.step_coupling()
        model.fixed_coupling_matrix = model.fixed_step_coupling = None    # from the weights again
        assert torch.equal(refixed, model.step_coupling()) and not torch.equal(refixed, held)


def test_sequential_scheme_scripts_too():
    model = AFRNN(AFRNNConfig(input_size=1, layer_sizes=(5, 4, 3), output_size=2, update="sequential"))
    loaded = torch.jit.script(model)
    x = torch.randn(2, 12, 1)
    assert (model(x) - loaded(x)).abs().max() <= 1e-6


@pytest.mark.parametrize("kwargs,match", [
    ({"layer_sizes": ()}, "layer_sizes"),
    ({"layer_sizes": (4, 0)}, "layer_sizes"),
    ({"feedback": "sideways"}, "feedback must be one of"),
    ({"update": "jacobi"}, "update must be one of"),
    ({"epsilon": 0.0}, "epsilon must be > 0"),
    ({"gamma": -1.0}, "gamma must be"),
    ({"layer_sizes": (4, 4), "couplings": ((1, 0),)}, "couplings must be pairs"),
    ({"layer_sizes": (4, 4, 4), "couplings": ((0, 3),)}, "couplings must be pairs"),
    ({"layer_sizes": (4, 4), "couplings": ((0, 1), (0, 1))}, "must not repeat"),
])
def test_config_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AFRNNConfig(**kwargs)


def test_paper_model_rejects_unknown_task_variant_and_override():
    with pytest.raises(ValueError, match="task must be one of"):
        paper_model("imagenet", "afrnn")
    with pytest.raises(ValueError, match="variant must be one of"):
        paper_model("mnist", "gru")
    with pytest.raises(ValueError, match="unknown override"):
        paper_model("mnist", "afrnn", hidden=3)


def test_wrong_input_shape_is_rejected_with_the_expected_shape():
    model = paper_model("cifar10", "afrnn", layer_sizes=(4, 4))
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, steps, 3\)"):
        model(torch.randn(2, 10, 1))


def test_only_antisymmetric_couplings_claim_theorem3():
    claims = {v: paper_model("mnist", v).theorem_applies for v in VARIANTS}
    assert claims == {"arnn": True, "2-arnn": False, "frnn": False, "afrnn": True, "lstm": False}
