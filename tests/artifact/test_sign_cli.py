"""afrnn-sign: make a key pair, sign a version folder, verify it, and fail with the reason once it is
tampered with; the installed console script once, the rest in-process."""

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from artifact.sign_cli import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, main
from artifact.signing import SIGNATURE_FILE, key_fingerprint, verify_folder
from tests.artifact.conftest import CHECKPOINTS


def test_round_trip_keygen_sign_verify_tamper(tmp_path, version_folder, capsys):
    keys = tmp_path / "trial-keys"
    assert main(["--keygen", str(keys)]) == 0
    private, public = keys / PRIVATE_KEY_FILE, keys / PUBLIC_KEY_FILE
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert key_fingerprint(public) in capsys.readouterr().out

    assert main([str(version_folder), "--key", str(private)]) == 0
    assert (version_folder / SIGNATURE_FILE).is_file()
    assert main(["--verify", str(version_folder), "--trusted-key", str(public)]) == 0
    assert "signature verified" in capsys.readouterr().out

    shutil.copyfile(CHECKPOINTS / "mnist-frnn.pt", version_folder / "mnist.pt")
    assert main(["--verify", str(version_folder), "--trusted-key", str(public)]) == 1
    err = capsys.readouterr().err
    assert "refused (mismatch)" in err and "mnist/1" in err


def test_verify_reports_unsigned_and_wrong_key(tmp_path, version_folder, keys, other_keys, capsys):
    assert main(["--verify", str(version_folder), "--trusted-key", str(keys[1])]) == 1
    assert "(unsigned)" in capsys.readouterr().err
    assert main([str(version_folder), "--key", str(other_keys[0])]) == 0
    assert main(["--verify", str(version_folder), "--trusted-key", str(keys[1])]) == 1
    assert "(wrong_key)" in capsys.readouterr().err


def test_password_from_the_environment(tmp_path, version_folder, monkeypatch):
    monkeypatch.setenv("AFRNN_TEST_KEY_PASSWORD", "s3cret")
    keys = tmp_path / "locked"
    assert main(["--keygen", str(keys), "--password-env", "AFRNN_TEST_KEY_PASSWORD"]) == 0
    with pytest.raises(SystemExit) as no_password:
        main([str(version_folder), "--key", str(keys / PRIVATE_KEY_FILE)])
    assert no_password.value.code == 2
    assert main([str(version_folder), "--key", str(keys / PRIVATE_KEY_FILE),
                 "--password-env", "AFRNN_TEST_KEY_PASSWORD"]) == 0
    assert verify_folder(version_folder, keys / PUBLIC_KEY_FILE).verified


@pytest.mark.parametrize("argv", [
    ["FOLDER"],                                                   # no --key
    ["FOLDER", "--key", "KEY", "--password-env", "AFRNN_TEST_UNSET_VARIABLE"],
    ["--verify", "FOLDER"],                                       # no --trusted-key
    ["--verify", "FOLDER", "--trusted-key", "ABSENT"],
    ["--keygen", "EXISTING"],                                     # would overwrite a key
    ["FOLDER", "--verify", "FOLDER"],                             # two modes
], ids=["no key", "unset password variable", "no trusted key", "absent trusted key", "overwrite",
        "two modes"])
def test_usage_errors_exit_2(tmp_path, version_folder, keys, argv, monkeypatch):
    monkeypatch.delenv("AFRNN_TEST_UNSET_VARIABLE", raising=False)
    existing = tmp_path / "existing"
    main(["--keygen", str(existing)])
    names = {"FOLDER": str(version_folder), "KEY": str(keys[0]), "ABSENT": str(tmp_path / "absent.pem"),
             "EXISTING": str(existing)}
    (version_folder / SIGNATURE_FILE).write_text("{}")
    with pytest.raises(SystemExit) as info:
        main([names.get(a, a) for a in argv])
    assert info.value.code == 2


def test_console_script(tmp_path, version_folder):
    script = Path(sys.executable).parent / "afrnn-sign"
    if not script.exists():
        pytest.skip("afrnn-sign is not installed (pip install -e .)")
    run = lambda *args: subprocess.run([str(script), *args], capture_output=True, text=True)   # noqa: E731
    assert "KMS" in run("--help").stdout
    assert run("--keygen", str(tmp_path / "k")).returncode == 0
    assert run(str(version_folder), "--key", str(tmp_path / "k" / PRIVATE_KEY_FILE)).returncode == 0
    (version_folder / "extra").write_text("x")
    failed = run("--verify", str(version_folder), "--trusted-key", str(tmp_path / "k" / PUBLIC_KEY_FILE))
    assert failed.returncode == 1 and "(mismatch)" in failed.stderr
