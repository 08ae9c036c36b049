"""--signing-key of afrnn-train and python -m training.reexport: a version folder is signed after export;
a flat output is refused (exit 2) before any training."""

import shutil

import pytest

from artifact.signing import SIGNATURE_FILE, verify_folder
from tests.artifact.conftest import CHECKPOINTS, make_version_folder, write_key_pair
from tests.training.conftest import _one_thread, write_mnist  # noqa: F401 (_one_thread: autouse fixture)
from training import cli, reexport

TINY = ["--task", "mnist", "--hidden-size", "4", "--batch-size", "16", "--epochs", "1", "--val-size", "0",
        "--limit-train", "32", "--limit-test", "8", "--seed", "0", "--no-progress"]


def test_training_into_a_version_folder_signs_it(tmp_path, keys):
    data = write_mnist(tmp_path / "data")
    out = tmp_path / "models" / "mnist" / "1"
    assert cli.main([*TINY, "--data-dir", str(data), "--out-dir", str(out),
                     "--signing-key", str(keys[0])]) == 0
    status = verify_folder(out, keys[1])
    assert status.verified
    signed = {"mnist.pt", "mnist.json", "mnist.metrics.jsonl", "mnist.curve.png", "mnist.train.pt"}
    assert {p.name for p in out.iterdir()} == signed | {SIGNATURE_FILE}
    assert f"{len(signed)} files" in status.detail


@pytest.mark.parametrize("out_dir", ["checkpoints", "models/mnist", "models/other/1", "models/mnist/01"],
                         ids=["flat", "name folder", "another model's", "not a version number"])
def test_training_refuses_to_sign_a_flat_output_before_training(tmp_path, keys, capsys, out_dir):
    out = tmp_path / out_dir
    with pytest.raises(SystemExit) as info:
        cli.main([*TINY, "--data-dir", str(tmp_path / "no-data"), "--out-dir", str(out),
                  "--signing-key", str(keys[0])])
    assert info.value.code == 2
    assert "version folder" in capsys.readouterr().err
    assert not out.exists()


def test_training_checks_the_key_before_training(tmp_path, capsys):
    private, _ = write_key_pair(tmp_path / "locked", password=b"pw")
    out = tmp_path / "models" / "mnist" / "1"
    with pytest.raises(SystemExit) as info:
        cli.main([*TINY, "--out-dir", str(out), "--signing-key", str(private)])
    assert info.value.code == 2 and "--signing-key" in capsys.readouterr().err
    assert not out.exists()


def test_signing_options_are_not_training_config():
    cfg, run, explicit = cli.resolve(["--task", "mnist", "--signing-key", "k.pem"])
    assert not explicit & cli.SIGNING_FIELDS
    assert "signing_key" not in cfg.model_dump() and "signing_key" not in run.model_dump()


def test_reexport_signs_version_folders(tmp_path, keys):
    folders = [make_version_folder(tmp_path / "models", "mnist", 2),
               make_version_folder(tmp_path / "models", "pendulum", 1)]
    reexport.main([str(f / f"{f.parent.name}.json") for f in folders] + ["--signing-key", str(keys[0])])
    for folder in folders:
        assert verify_folder(folder, keys[1]).verified


def test_reexport_refuses_to_sign_flat_manifests(tmp_path, keys):
    flat = tmp_path / "checkpoints"
    flat.mkdir()
    shutil.copy2(CHECKPOINTS / "mnist.json", flat / "mnist.json")
    shutil.copy2(CHECKPOINTS / "mnist.pt", flat / "mnist.pt")
    with pytest.raises(SystemExit) as info:
        reexport.main([str(flat / "mnist.json"), "--signing-key", str(keys[0])])
    assert info.value.code == 2
    assert not (flat / SIGNATURE_FILE).exists()
