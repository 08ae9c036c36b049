"""The compiled inference path (model.inference) against the model's own forward and a float64 loop."""

import shutil

import numpy as np
import pytest
import torch

from model import AFRNN, AFRNNConfig, LSTMBaseline, LSTMConfig
from model import inference as fast_inference
from model.inference import FastRecurrence, cpu_flags

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="no C compiler: the fast path is unavailable (tested below)")


def numpy_euler(model: AFRNN, x: torch.Tensor) -> np.ndarray:
    """Readout after z ← z + ε tanh(B z + E x_t + b), step by step in float64 (independent loop)."""
    with torch.no_grad():
        B = model.coupling_matrix().double().numpy()
        E = model.weight_in.double().numpy()
        b = torch.cat([layer.bias for layer in model.layers]).double().numpy()
        W, c = model.head.weight.double().numpy(), model.head.bias.double().numpy()
    xs = x.double().numpy()
    top = model.layer_bounds[-2]
    out = []
    for row in xs:
        z = np.full(model.state_size, model.initial_value)
        for x_t in row:
            u = b.copy()
            u[:E.shape[0]] += E @ x_t
            z = z + model.epsilon * np.tanh(B @ z + u)
        out.append(W @ z[top:] + c)
    return np.stack(out)


def make(variant: dict, seed: int = 0) -> AFRNN:
    torch.manual_seed(seed)
    config = dict(input_size=2, layer_sizes=(12, 8), output_size=5, epsilon=0.1, gamma=0.01, init_std=2.0)
    config.update(variant)
    model = AFRNN(AFRNNConfig(**config)).eval()
    with torch.no_grad():                  # non-zero biases, so that the drive's bias part is tested
        for layer in model.layers:
            layer.bias.normal_(0, 0.5)
    return model


# state sizes 20, 16, 15 and 73: a whole number of 8-column panels or not, and with 73 (10 panels)
# every panel grouping of the kernel (8, 4, 3, 2 panels per register block) leaves a remainder
VARIANTS = [dict(), dict(feedback="free"), dict(feedback="none"), dict(layer_sizes=(16,)),
            dict(layer_sizes=(6, 5, 4), couplings=((0, 1), (1, 2), (0, 2))), dict(initial_state=1.0),
            dict(layer_sizes=(40, 33))]


@needs_compiler
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) or "afrnn")
@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 6, 7, 13])     # every row-block height, and several blocks
def test_fast_path_equals_reference_forward(variant, batch):
    model = make(variant)
    x = torch.randn(batch, 40, 2)
    fast, why = FastRecurrence.from_module(model)
    assert fast is not None, why
    got = fast(x)
    with torch.no_grad():
        expected = model(x)
    assert got.shape == expected.shape == (batch, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(got.numpy(), numpy_euler(model, x), rtol=1e-4, atol=1e-4)


@needs_compiler
def test_fast_path_of_the_scripted_paper_model_equals_its_forward():
    torch.manual_seed(1)
    from model import paper_model
    scripted = torch.jit.script(paper_model("mnist", "afrnn").eval())
    fast, why = FastRecurrence.from_module(scripted)
    assert fast is not None, why
    x = torch.rand(2, 784, 1)
    with torch.inference_mode():
        expected = scripted(x)
    torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(fast(x).argmax(1), expected.argmax(1))


@needs_compiler
def test_fast_path_uses_the_weights_of_when_it_was_built():
    model = make({})
    fast, _ = FastRecurrence.from_module(model)
    x = torch.randn(1, 30, 2)
    before = fast(x).clone()
    with torch.no_grad():
        model.layers[0].weight_rec.mul_(3.0)
        changed = model(x)
    assert not torch.allclose(changed, before, atol=1e-3)       # B changed the model's answer …
    torch.testing.assert_close(fast(x), before)                # … not the snapshot's (rebuild to update)


def test_models_the_kernel_does_not_cover_keep_their_forward():
    fast, why = FastRecurrence.from_module(make(dict(update="sequential")))
    assert fast is None and "sequential" in why
    lstm = LSTMBaseline(LSTMConfig(hidden_size=8, output_size=3))
    fast, why = FastRecurrence.from_module(lstm)
    assert fast is None and "coupling_matrix" in why
    fast, why = FastRecurrence.from_module(make({}).double())
    assert fast is None and "float64" in why


@needs_compiler
def test_rows_of_a_batch_do_not_interact():
    """Each row's answer is the one it gets alone, wherever the row blocks of 6 fall."""
    model = make(dict(layer_sizes=(40, 33)))
    fast, _ = FastRecurrence.from_module(model)
    x = torch.randn(13, 25, 2, generator=torch.Generator().manual_seed(3))
    together = fast(x)
    alone = torch.cat([fast(x[i:i + 1]) for i in range(13)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


@needs_compiler
def test_the_whole_batch_is_one_call_of_the_loop(monkeypatch):
    """The drive is formed inside the loop, so no batch is split: 13 rows, one call (one GIL release)."""
    model = make(dict(layer_sizes=(40, 33)))
    fast, _ = FastRecurrence.from_module(model)
    x = torch.randn(13, 25, 2, generator=torch.Generator().manual_seed(4))
    calls = []
    loop = fast._loop
    monkeypatch.setattr(fast, "_loop", lambda *args: calls.append(args[5:9]) or loop(*args))
    got = fast(x)
    assert calls == [(13, 25, 73, 2)]                        # rows, steps, state size, input size
    with torch.no_grad():
        torch.testing.assert_close(got, model(x), rtol=1e-5, atol=2e-5)


def test_b_transposed_is_packed_in_the_kernels_panels():
    assert f"#define VL {fast_inference.PANEL_COLUMNS} " in fast_inference._KERNEL_SOURCE
    coupling_t = torch.randn(19, 19)
    packed = fast_inference.pack_panels(coupling_t)
    assert packed.shape == (3, 19, 8) and packed.is_contiguous() and packed.data_ptr() % 32 == 0
    for p in range(3):
        for k in range(19):
            for j in range(8):
                expected = coupling_t[k, 8 * p + j] if 8 * p + j < 19 else 0.0
                assert packed[p, k, j] == expected


class ShiftedDrive(AFRNN):
    """An AFRNN whose input drive is not ``weight_in x + b`` (an extra offset): the kernel's form of the
    drive would be wrong for it."""

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        return super().input_drive(x) + 0.01


def test_a_model_whose_drive_is_not_its_input_weights_keeps_its_forward():
    model = ShiftedDrive(AFRNNConfig(input_size=2, layer_sizes=(12, 8), output_size=5)).eval()
    fast, why = FastRecurrence.from_module(model)
    assert fast is None and "input_drive" in why
    drive, why = fast_inference.affine_drive(make({}))
    assert drive is not None, why
    input_t, bias = drive
    assert input_t.shape == (2, 20) and bias.shape == (20,)
    assert not input_t[:, 12:].any()                        # the input reaches the first layer only


@needs_compiler
def test_fast_path_rejects_wrong_inputs():
    fast, _ = FastRecurrence.from_module(make({}))
    with pytest.raises(ValueError, match="float32 on the CPU"):
        fast(torch.randn(1, 10, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        fast.final_state(torch.randn(10, 2))
    with pytest.raises(ValueError, match="shape"):
        fast.final_state(torch.randn(1, 10, 3))             # the model takes 2 input channels


def _fresh_kernel(monkeypatch, tmp_path, compiler: str, prebuilt: str | None = None):
    monkeypatch.setattr(fast_inference, "_kernel", None)
    monkeypatch.setattr(fast_inference, "_kernel_error", None)
    monkeypatch.setenv("AFRNN_KERNEL_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", compiler)
    if prebuilt is None:
        monkeypatch.delenv(fast_inference.PREBUILT_ENV, raising=False)
    else:
        monkeypatch.setenv(fast_inference.PREBUILT_ENV, prebuilt)


def test_no_compiler_and_no_prebuilt_kernel_means_no_fast_path(monkeypatch, tmp_path):
    _fresh_kernel(monkeypatch, tmp_path, str(tmp_path / "no-such-compiler"))
    fast, why = FastRecurrence.from_module(make({}))
    assert fast is None and "no C compiler" in why and fast_inference.PREBUILT_ENV in why
    _fresh_kernel(monkeypatch, tmp_path, shutil.which("false"))          # a compiler that fails
    fast, why = FastRecurrence.from_module(make({}))
    assert fast is None and "kernel build/load failed" in why
    assert not list(tmp_path.rglob("*.so"))


@needs_compiler
def test_without_a_compiler_the_best_prebuilt_kernel_this_cpu_runs_is_used(monkeypatch, tmp_path):
    """The image's case: kernels prebuilt for x86-64-v3 and -v2, no compiler at run time."""
    if not all(flags <= cpu_flags()[1] for _, flags in fast_inference.PORTABLE_TARGETS[-1:]):
        pytest.skip("this CPU runs none of the portable x86-64 levels")
    built = fast_inference.prebuild(tmp_path / "prebuilt")
    assert [p.name.rsplit("_", 1)[1] for p in built] == ["x86-64-v3.so", "x86-64-v2.so"]
    model, x = make({}), torch.randn(2, 9, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    _fresh_kernel(monkeypatch, tmp_path, str(tmp_path / "no-such-compiler"), str(tmp_path / "prebuilt"))
    # a CPU with only the v2 flags gets the v2 build, and its answers are the model's
    v2_only = fast_inference.PORTABLE_TARGETS[1][1] | {"sse2"}
    monkeypatch.setattr(fast_inference, "cpu_flags", lambda cpuinfo=None: ("old CPU", v2_only))
    assert fast_inference._prebuilt_for_this_cpu() == (built[1], "x86-64-v2")
    fast, why = FastRecurrence.from_module(model)
    assert fast is not None, why
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "cache").exists()                           # nothing was compiled
    # a CPU below v2 gets no kernel, and the reason says which levels there were
    monkeypatch.setattr(fast_inference, "cpu_flags", lambda cpuinfo=None: ("older CPU", frozenset({"sse2"})))
    path, why = fast_inference._prebuilt_for_this_cpu()
    assert path is None and "x86-64-v3, x86-64-v2" in why


CPUINFO = "processor\t: 0\nmodel name\t: {model}\nflags\t\t: fpu sse2 avx2 fma {extra}\n"


def test_cpu_flags_reads_the_model_name_and_the_first_flags_line():
    xeon = CPUINFO.format(model="Intel Xeon", extra="avx512f amx_tile amx_bf16")
    assert cpu_flags(xeon) == ("Intel Xeon", frozenset("fpu sse2 avx2 fma avx512f amx_tile amx_bf16".split()))


def test_the_kernel_source_is_a_file_of_the_package():
    """The C source lives beside its loader (package data) and is what the build key hashes."""
    assert fast_inference.KERNEL_SOURCE_PATH.name == "fast_recurrence.c"
    assert "int afrnn_euler_loop(" in fast_inference.KERNEL_SOURCE_PATH.read_text()
