"""``afrnn-stability`` end to end: paper configurations and an exported checkpoint in, a JSON report
that validates as ``StabilityReport`` and PNG figures out; bad arguments exit with a usage error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from artifact.export import export_torchscript
from model import AFRNN, AFRNNConfig, count_parameters
from model.stability import StabilityReport
from training.stability_cli import main

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def _pngs(directory: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    for path in sorted(directory.glob("*.png")):
        with Image.open(path) as image:
            sizes[path.name] = image.size
    return sizes


def test_paper_configuration_writes_a_valid_report_and_pngs(tmp_path, capsys):
    out, plots = tmp_path / "report.json", tmp_path / "plots"
    main(["--task", "pendulum", "--variant", "afrnn", "--seed", "1", "--sequence-length", "12",
          "--lyapunov-k", "4", "--spectrum-samples", "3", "--gradient-samples", "3",
          "--out", str(out), "--plots", str(plots)])
    report = StabilityReport.model_validate_json(out.read_text())
    assert report.model.variant == "afrnn" and report.model.steps == 12 and report.model.input == "noise"
    assert report.model.state_size == 200 and report.lyapunov.k == 4
    assert report.sections == ["theorem", "spectrum", "discrete", "gradients", "lyapunov", "trajectory"]
    assert set(_pngs(plots)) == {"report.png", "fig2_activations.png", "fig3_divergence.png",
                                 "fig4_gradient_propagation.png", "eigenvalues.png"}
    assert report.summary.verdict in capsys.readouterr().err


def test_the_imex_step_of_a_paper_configuration(capsys):
    """The same random weights under both steps: the report names the step, and the IMEX step's
    radius stays ≤ 1 where explicit Euler's exceeds it."""
    radii = {}
    for step in ("euler", "imex"):
        main(["--task", "mnist", "--variant", "afrnn", "--discretisation", step, "--sequence-length", "20",
              "--sections", "theorem,spectrum,discrete", "--spectrum-samples", "20"])
        report = StabilityReport.model_validate_json(capsys.readouterr().out)
        assert report.model.discretisation == step and report.theorem.stability_guaranteed
        radii[step] = report.summary.max_step_spectral_radius
    assert radii["imex"] <= 1.0 + 1e-6 < radii["euler"]


def test_sections_and_stdout(capsys):
    main(["--task", "mnist", "--variant", "lstm", "--sequence-length", "6", "--sections", "lyapunov",
          "--lyapunov-k", "2", "--input", "zeros"])
    captured = capsys.readouterr()
    report = StabilityReport.model_validate_json(captured.out)
    assert report.sections == ["lyapunov"] and report.model.family == "lstm"
    assert len(report.lyapunov.exponents) == 2 and report.model.input == "zeros"


def _export_small_model(directory: Path) -> Path:
    torch.manual_seed(0)
    config = AFRNNConfig(input_size=4, layer_sizes=(6, 5), output_size=4, epsilon=0.1, gamma=0.15)
    model = AFRNN(config)
    fields = dict(
        name="tiny-afrnn", version="0.0.1", task="pendulum",
        architecture=dict(family="afrnn", variant="afrnn",
                          config={"input_size": 4, "layer_sizes": [6, 5], "output_size": 4}),
        parameters=count_parameters(model),
        input=dict(sequence_length=9, channels=4, layout="initial state, then 1.0",
                   normalization_mean=[0.0] * 4, normalization_std=[1.0] * 4, value_range=(-10.0, 10.0),
                   units="radians"),
        output=dict(kind="states", state_names=["theta1", "theta2", "omega1", "omega2"]),
        training=dict(epochs=0, wall_time_s=0.0, hardware="cpu", command="test"),
        dataset_hash="0" * 64, code_version="test", torch_version=torch.__version__,
    )
    export_torchscript(model, directory, fields)
    return directory / "tiny-afrnn.json"


def test_checkpoint_is_loaded_through_the_verified_export(tmp_path, capsys):
    manifest = _export_small_model(tmp_path / "ckpt")
    main(["--checkpoint", str(manifest), "--lyapunov-k", "3", "--out", str(tmp_path / "r.json")])
    report = StabilityReport.model_validate_json((tmp_path / "r.json").read_text())
    assert report.model.steps == 9 and report.model.state_size == 11 and report.model.input_size == 4
    assert "tiny-afrnn 0.0.1" in capsys.readouterr().err
    # a tampered artifact is refused before it is loaded
    artifact = tmp_path / "ckpt" / "tiny-afrnn.pt"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(manifest)])
    assert exit_info.value.code == 2
    assert "does not match the manifest" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--variant", "afrnn"], "give either --checkpoint or --task"),
    (["--task", "mnist"], "--task needs --variant"),
    (["--task", "mnist", "--variant", "lstm", "--sections", "spectrum"], "do not apply to an LSTM"),
    (["--task", "mnist", "--variant", "afrnn", "--sequence-length", "5", "--lyapunov-k", "0"],
     "lyapunov_k must be between 1"),
    (["--task", "mnist", "--variant", "afrnn", "--sections", "theorem,nope"], "unknown section"),
    (["--task", "mnist", "--variant", "lstm", "--discretisation", "imex"], "AFRNN family"),
])
def test_bad_arguments_exit_with_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_module(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "training.stability_cli", "--task", "pendulum", "--variant", "2-arnn",
         "--sequence-length", "5", "--lyapunov-k", "2", "--out", str(tmp_path / "r.json")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"]["variant"] == "2-arnn"
    assert report["theorem"]["coupling_structure"] == "block_triangular"


@pytest.mark.parametrize("task,index", [("mnist", 0), ("mnist", 299), ("cifar10", 17)])
def test_the_shipped_sample_stands_in_for_the_data_set(task, index, monkeypatch, tmp_path):
    """Without a data directory, --sample-index takes the image from artifact/samples; with the real data
    (when present) it is the same normalised input, value for value."""
    import training.data.paths as paths
    from training.stability_cli import _shipped_sample, _test_sample

    shipped = _shipped_sample(task, index)
    monkeypatch.delenv("AFRNN_DATA_DIR", raising=False)
    monkeypatch.setattr(paths, "WORKSPACE_DATA_DIR", tmp_path / "no-data")
    assert torch.equal(_test_sample(task, index, None), shipped)
    with pytest.raises(ValueError, match="not in the shipped"):
        _test_sample(task, 300, None)
    real = Path(__file__).resolve().parents[3] / "shared" / "data"
    if (real / ("mnist" if task == "mnist" else "cifar10")).is_dir():
        assert torch.equal(_test_sample(task, index, str(real)), shipped)
