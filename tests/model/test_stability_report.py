"""The report as the service sees it: arguments and their errors, section selection, the summary and
verdict, JSON round trips, TorchScript parity with the eager model, and the PNG renderers."""

import io
import math
import warnings

import pytest
import torch
from PIL import Image

from model import AFRNN, AFRNNConfig, LSTMBaseline, LSTMConfig
from model.stability import SECTIONS, StabilityArgumentError, StabilityReport, stability_report
from model.stability.analysis import _verdict
from model.stability.plots import (
    figure_activations,
    figure_divergence,
    figure_eigenvalues,
    figure_gradient_propagation,
    figure_to_png,
    render_report_png,
)

torch.set_num_threads(1)


def afrnn(**overrides) -> AFRNN:
    torch.manual_seed(0)
    settings = dict(input_size=2, layer_sizes=(6, 5), output_size=3, epsilon=0.1, gamma=0.05, init_std=2.0)
    settings.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AFRNN(AFRNNConfig(**settings))


def lstm() -> LSTMBaseline:
    torch.manual_seed(0)
    return LSTMBaseline(LSTMConfig(input_size=2, hidden_size=4, num_layers=2, output_size=3))


def scripted(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """torch.jit.script, save and load: the form the service has."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def noise(steps: int = 12, channels: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(steps, channels, generator=torch.Generator().manual_seed(seed))


def assert_same_numbers(a, b, path="report", rel=1e-4, abs_=1e-6):
    """Recursive comparison of two JSON-like trees, floats to a tolerance."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_numbers(a[key], b[key], f"{path}.{key}", rel, abs_)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_numbers(x, y, f"{path}[{i}]", rel, abs_)
    elif isinstance(a, float) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=rel, abs=abs_), path
    else:
        assert a == b, path


# -- sections and summary ------------------------------------------------------------------------
def test_all_sections_for_afrnn_and_only_three_for_lstm():
    report = stability_report(afrnn(), noise(), lyapunov_k=4)
    assert report.sections == list(SECTIONS)
    assert all(getattr(report, name) is not None for name in SECTIONS)
    summary = report.summary
    assert summary.theorem_holds is True
    assert summary.max_real_eigenvalue == report.spectrum.max_real_eigenvalue
    assert summary.max_step_spectral_radius == report.discrete.max_step_spectral_radius
    assert summary.top_lyapunov_exponent == report.lyapunov.exponents[0]
    assert summary.gradient_norm_ratio == report.gradients.norm_ratio
    assert summary.verdict in ("stable", "marginal", "unstable") and summary.verdict_reasons

    report = stability_report(lstm(), noise(), lyapunov_k=4)
    assert report.sections == ["gradients", "lyapunov", "trajectory"]
    assert report.theorem is None and report.spectrum is None and report.discrete is None
    assert report.summary.theorem_holds is None
    assert report.summary.max_real_eigenvalue is None and report.summary.max_step_spectral_radius is None
    assert report.model.family == "lstm" and report.model.epsilon is None and report.model.state_size == 16


def test_fields_of_sections_not_computed_are_null():
    report = stability_report(afrnn(), noise(), sections={"lyapunov"}, lyapunov_k=2)
    assert report.sections == ["lyapunov"]
    s = report.summary
    assert (s.theorem_holds, s.max_real_eigenvalue, s.max_step_spectral_radius, s.gradient_norm_ratio,
            s.divergence_ratio) == (None, None, None, None, None)
    assert s.top_lyapunov_exponent is not None and s.verdict is not None
    only_theorem = stability_report(afrnn(), noise(), sections=["theorem"])
    assert only_theorem.summary.theorem_holds is True and only_theorem.summary.verdict is None


def test_model_facts():
    report = stability_report(afrnn(update="sequential"), noise(steps=9), sections={"theorem"}, seed=4)
    facts = report.model
    assert (facts.variant, facts.state_size, facts.layer_sizes, facts.steps, facts.input_size) == \
        ("afrnn", 11, [6, 5], 9, 2)
    assert facts.epsilon == pytest.approx(0.1) and facts.gamma == pytest.approx(0.05)
    assert (facts.update, facts.input, facts.initial_state, facts.seed) == ("sequential", "given", "model", 4)


def test_default_inputs_are_zeros_or_seeded_noise():
    model = afrnn()
    zeros = stability_report(model, sections={"trajectory"}, sequence_length=8)
    assert zeros.model.input == "zeros"
    # zero biases, zero input, z_0 = 0: the AFRNN sits at its fixed point z = 0
    assert zeros.trajectory.max_abs_state == 0.0
    a = stability_report(model, sections={"trajectory"}, sequence_length=8, default_input="noise", seed=1)
    b = stability_report(model, sections={"trajectory"}, sequence_length=8, default_input="noise", seed=1)
    c = stability_report(model, sections={"trajectory"}, sequence_length=8, default_input="noise", seed=2)
    assert a.trajectory.traces == b.trajectory.traces != c.trajectory.traces
    assert a.model.input == "noise" and a.trajectory.max_abs_state > 0


def test_x_of_shape_t_c_and_1_t_c_and_h0_give_the_same_report():
    model, x = afrnn(), noise()
    h0 = torch.full((11,), 0.3)
    a = stability_report(model, x, h0=h0, sections={"gradients", "trajectory"})
    b = stability_report(model, x.unsqueeze(0), h0=h0.unsqueeze(0), sections={"gradients", "trajectory"})
    assert a.model.initial_state == "given"
    assert a.trajectory.traces == b.trajectory.traces
    assert a.gradients.spectral_norm == b.gradients.spectral_norm
    assert a.trajectory.traces[0][0] == pytest.approx(0.3)


def test_trajectory_divergence_starts_at_delta():
    trajectory = stability_report(afrnn(), noise(), sections={"trajectory"}, delta=0.01).trajectory
    assert trajectory.divergence[0] == pytest.approx(0.01, rel=1e-5)
    assert len(trajectory.divergence) == len(trajectory.top_layer_max) == 13
    assert trajectory.top_layer == (6, 11) and trajectory.phase_neurons == (0, 6)
    assert trajectory.divergence_ratio == pytest.approx(trajectory.divergence[-1] / trajectory.divergence[0])
    assert all(lo <= hi for lo, hi in zip(trajectory.neuron_min, trajectory.neuron_max, strict=True))


def test_json_round_trip():
    report = stability_report(afrnn(), noise(), lyapunov_k=3)
    text = report.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert StabilityReport.model_validate_json(text) == report


# -- the verdict ----------------------------------------------------------------------------------
def _summary(**values):
    base = dict(gradient_norm_ratio=None, top_lyapunov_exponent=None, divergence_ratio=None,
                max_real_eigenvalue=None, max_step_spectral_radius=None)
    base.update(values)
    return base


def test_verdict_rules():
    assert _verdict(_summary(gradient_norm_ratio=2e3), 100)[0] == "unstable"
    assert _verdict(_summary(top_lyapunov_exponent=math.log(2e3) / 100), 100)[0] == "unstable"
    assert _verdict(_summary(gradient_norm_ratio=50.0), 100)[0] == "marginal"
    assert _verdict(_summary(gradient_norm_ratio=2.0, max_real_eigenvalue=1e-3), 100)[0] == "marginal"
    assert _verdict(_summary(gradient_norm_ratio=2.0, max_step_spectral_radius=1.03), 100)[0] == "marginal"
    verdict, reasons = _verdict(_summary(gradient_norm_ratio=2.0, max_real_eigenvalue=-1e-4,
                                         max_step_spectral_radius=1.001, divergence_ratio=1e-9), 100)
    assert verdict == "stable" and len(reasons) == 3 and "1.001" in reasons[2]
    assert _verdict(_summary(gradient_norm_ratio=1e-40), 100)[0] == "stable"      # vanishing ≠ unstable
    assert _verdict(_summary(), 100)[0] is None


def test_a_stable_verdict_beside_a_failed_euler_condition_says_why():
    # γ = 0: |1 + ε·iω| > 1, so the Euler condition fails, but 12 steps of it compound to about 2.3
    report = stability_report(afrnn(gamma=0.0), noise(), sections=["spectrum", "discrete"])
    assert report.summary.verdict == "stable" and not report.discrete.euler_condition_holds
    assert any("explicit-Euler condition" in reason and "does not require it" in reason
               for reason in report.summary.verdict_reasons), report.summary.verdict_reasons


def test_verdicts_of_stable_and_exploding_models():
    calm = stability_report(afrnn(init_std=1.0), noise(steps=30), lyapunov_k=3)
    assert calm.summary.verdict == "stable", calm.summary.verdict_reasons
    assert calm.summary.gradient_regime == "preserving"
    generator = torch.Generator().manual_seed(1)
    x, h0 = torch.randn(80, 2, generator=generator), 0.5 * torch.randn(20, generator=generator)
    wild = stability_report(afrnn(feedback="free", layer_sizes=(10, 10), init_std=1.0, epsilon=0.5,
                                  gamma=0.0), x, h0=h0, lyapunov_k=3)
    assert wild.summary.verdict == "unstable", wild.summary.verdict_reasons
    assert wild.summary.horizon_growth > 1e3 and wild.summary.theorem_holds is False


# -- bad arguments --------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(sections={"theorem", "bogus"}), r"sections: unknown section\(s\) \['bogus'\]"),
    (dict(sections=set()), "sections: give at least one"),
    (dict(lyapunov_k=0), "lyapunov_k must be between 1 and the state size D = 11, got 0"),
    (dict(lyapunov_k=12), "lyapunov_k must be between 1 and the state size D = 11, got 12"),
    (dict(x=torch.zeros(2, 5, 2)), r"x must be one sequence of shape \(T, C\) or \(1, T, C\)"),
    (dict(x=torch.zeros(5, 3)), "x must have C = 2 values per step"),
    (dict(x=torch.zeros(0, 2)), "at least one step"),
    (dict(x=torch.full((4, 2), float("nan"))), "x must contain only finite values"),
    (dict(x=None), "sequence_length must be a positive number of steps"),
    (dict(x=None, sequence_length=5, default_input="ones"), "default_input must be one of"),
    (dict(h0=torch.zeros(10)), r"h0 must have shape \(11,\) or \(1, 11\)"),
    (dict(delta=0.0), "delta must be a finite number > 0"),
    (dict(spectrum_samples=0), "spectrum_samples must be ≥ 1"),
    (dict(eigenvalue_steps=[0, 12]), r"eigenvalue_steps must lie in 0 … 11"),
    (dict(input_size=3), "input_size = 3 disagrees with the model's input size 2"),
])
def test_bad_arguments_raise_value_errors_naming_the_rule(kwargs, message):
    kwargs = {"x": noise(), "lyapunov_k": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        stability_report(afrnn(), **kwargs)


@pytest.mark.parametrize("kwargs, argument", [
    (dict(sections={"bogus"}), "sections"),
    (dict(lyapunov_k=0), "lyapunov_k"),
    (dict(x=torch.full((4, 2), float("nan"))), "x"),
    (dict(x=None), "sequence_length"),
    (dict(h0=torch.zeros(10)), "h0"),
    (dict(delta=0.0), "delta"),
    (dict(gradient_samples=0), "gradient_samples"),
    (dict(eigenvalue_steps=[0, 12]), "eigenvalue_steps"),
    (dict(input_size=3), "input_size"),
])
def test_bad_arguments_carry_the_argument_name(kwargs, argument):
    kwargs = {"x": noise(), "lyapunov_k": 4, **kwargs}
    with pytest.raises(StabilityArgumentError) as caught:
        stability_report(afrnn(), **kwargs)
    assert caught.value.argument == argument


def test_lstm_rejects_sections_that_need_a_coupling_matrix():
    with pytest.raises(ValueError, match=r"\['spectrum'\] do not apply to an LSTM"):
        stability_report(lstm(), noise(), sections={"spectrum", "gradients"})


def test_a_module_without_the_interface_is_rejected():
    with pytest.raises(ValueError, match="no `variant` attribute"):
        stability_report(torch.nn.Linear(2, 2), noise())


# -- interruption ---------------------------------------------------------------------------------
class _Stop(Exception):
    pass


@pytest.mark.parametrize("make, section, per_step", [
    (afrnn, "gradients", 1), (afrnn, "lyapunov", 1),
    (lambda: afrnn(update="sequential"), "lyapunov", 11),     # + one backward pass per coordinate (D = 11)
    (lstm, "gradients", 8)], ids=["afrnn-gradients", "afrnn-lyapunov", "sequential-jacobians", "lstm"])
def test_interrupt_is_called_at_every_step_of_the_long_loops(make, section, per_step):
    """A server stops a report at its deadline through ``interrupt``: it must be called at every step
    of the step-by-step sweeps (and, for autograd Jacobians, at every backward pass), not only between
    sections, or a report past its time would keep its worker for the rest of a sweep."""
    calls = 0

    def count():
        nonlocal calls
        calls += 1

    steps = 30
    stability_report(make(), noise(steps=steps), sections=[section], lyapunov_k=2, interrupt=count)
    assert calls >= steps + (per_step if per_step > 1 else 0), calls


def test_interrupt_is_called_between_batches_of_exact_spectra():
    """The exact spectra are batched eigvals calls of 8 steps each, with a check before each: with the
    spectrum of all 40 steps, at least 5 checks inside it."""
    calls = 0

    def count():
        nonlocal calls
        calls += 1

    stability_report(afrnn(), noise(steps=40), sections=["spectrum"], spectrum_samples=40, interrupt=count)
    assert calls >= 5 + 2, calls             # + the checks before the spectra and before the section


def test_an_interrupt_stops_the_report_where_it_raises():
    calls = 0

    def stop_at_the_tenth_check():
        nonlocal calls
        calls += 1
        if calls == 10:
            raise _Stop

    with pytest.raises(_Stop):
        stability_report(afrnn(), noise(steps=40), lyapunov_k=4, interrupt=stop_at_the_tenth_check)
    assert calls == 10                       # nothing ran on after the raise (no further check)
    # a check that never raises changes nothing
    checked = stability_report(afrnn(), noise(steps=40), lyapunov_k=4, interrupt=lambda: None)
    plain = stability_report(afrnn(), noise(steps=40), lyapunov_k=4)
    assert checked.model_dump(exclude={"timings_s"}) == plain.model_dump(exclude={"timings_s"})


# -- TorchScript ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [afrnn, lambda: afrnn(update="sequential"),
                                  lambda: afrnn(feedback="free"), lstm],
                         ids=["afrnn", "afrnn-sequential", "frnn", "lstm"])
def test_a_loaded_torchscript_model_gives_the_same_report_as_the_eager_one(make):
    model = make()
    x = noise(steps=15)
    eager = stability_report(model, x, lyapunov_k=4, gradient_samples=5, spectrum_samples=6)
    loaded = stability_report(scripted(model), x, lyapunov_k=4, gradient_samples=5, spectrum_samples=6)
    a = eager.model_dump(exclude={"timings_s"})
    b = loaded.model_dump(exclude={"timings_s"})
    # strings in the verdict reasons carry rounded numbers; compare them through the numbers above
    a["summary"].pop("verdict_reasons"), b["summary"].pop("verdict_reasons")
    assert_same_numbers(a, b)


def test_torchscript_default_input_needs_no_input_size():
    loaded = scripted(lstm())
    report = stability_report(loaded, sections={"trajectory"}, sequence_length=5, default_input="noise")
    assert report.model.input_size == 2


# -- figures --------------------------------------------------------------------------------------
def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_figures_render_to_png():
    a = stability_report(afrnn(), noise(), lyapunov_k=3)
    b = stability_report(lstm(), noise(), lyapunov_k=3)
    # low dpi keeps the test fast; 3 columns of 4.6 in, 3 rows of 3.6 in for the AFRNN's 7 panels
    assert _png_size(render_report_png(a, dpi=30)) == (414, 324)
    assert _png_size(render_report_png(b, dpi=30)) == (414, 216)         # LSTM: 5 panels, 2 rows
    for figure in (figure_activations({"AFRNN": a, "LSTM": b}), figure_divergence({"AFRNN": a, "LSTM": b}),
                   figure_gradient_propagation({"AFRNN": a, "LSTM": b}), figure_eigenvalues(a, steps=[0])):
        assert _png_size(figure_to_png(figure, dpi=30))[0] > 100


def test_figures_name_the_missing_section_or_step():
    report = stability_report(afrnn(), noise(), sections={"gradients"})
    with pytest.raises(ValueError, match="has no 'trajectory' section"):
        figure_activations(report)
    spectral = stability_report(afrnn(), noise(), sections={"spectrum"}, eigenvalue_steps=[3])
    with pytest.raises(ValueError, match=r"steps \[4\] have no stored spectrum"):
        figure_eigenvalues(spectral, steps=[4])
    with pytest.raises(ValueError, match="no section with a figure"):
        render_report_png(stability_report(afrnn(), noise(), sections={"theorem"}))
