"""Settings: documented defaults, AFRNN_* environment variables, flags over variables, and errors that
name the setting."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.__main__ import settings_from_args
from service.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for key in [k for k in __import__("os").environ if k.startswith("AFRNN_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)                 # no stray .env file


def test_defaults_serve_the_shipped_checkpoints_on_localhost():
    s = Settings()
    assert s.model_dir == REPO_ROOT / "checkpoints"
    assert (s.host, s.port, s.device) == ("127.0.0.1", 8000, "auto")
    assert s.api_key is None and s.readiness_policy == "all"
    assert s.max_batch_size == 32 and s.max_queue_delay_ms == 20
    assert s.log_format == "json"


def test_at_most_28_settings_and_the_removed_knobs_are_refused():
    """Settings whose measured effect was within noise are gone (docs/deployment.md), and so are
    their flags: 25, and the model repository's three (model_control, admin_key, trusted_key)."""
    assert len(Settings.model_fields) <= 28
    for flag in ("--http-server", "--malloc-arena-max", "--gil-switch-interval-ms", "--model-worker",
                 "--torch-threads", "--strict"):
        with pytest.raises(SystemExit):
            settings_from_args([flag, "1"])


def test_environment_variables_and_flags_layer(monkeypatch, tmp_path):
    monkeypatch.setenv("AFRNN_PORT", "9000")
    monkeypatch.setenv("AFRNN_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("AFRNN_API_KEY", "secret")
    monkeypatch.setenv("AFRNN_LOG_FORMAT", "TEXT")
    s = settings_from_args(["--port", "9100", "--model-dir", str(tmp_path), "--readiness-policy", "any"])
    assert s.port == 9100                       # the flag wins over the variable
    assert s.max_batch_size == 16               # the variable wins over the default
    assert s.model_dir == tmp_path and s.readiness_policy == "any"
    assert s.api_key.get_secret_value() == "secret" and "secret" not in repr(s)
    assert s.log_format == "text"


@pytest.mark.parametrize("argv, field", [
    (["--port", "70000"], "port"),
    (["--max-batch-size", "0"], "max_batch_size"),
    (["--max-queue-delay-ms", "5000", "--request-timeout-s", "1"], "max_queue_delay_ms"),
])
def test_bad_settings_name_the_setting(argv, field):
    with pytest.raises(ValidationError, match=field):
        settings_from_args(argv)


def test_bad_choice_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        settings_from_args(["--device", "tpu"])


def test_explicit_model_control_needs_its_own_admin_key():
    with pytest.raises(ValueError, match="admin_key"):
        Settings(model_control="explicit")
    with pytest.raises(ValueError, match="differ"):
        Settings(model_control="explicit", admin_key="same", api_key="same")
    s = Settings(model_control="EXPLICIT", admin_key="admin")
    assert s.model_control == "explicit" and s.admin_key.get_secret_value() == "admin"
    assert Settings(admin_key="", trusted_key="").admin_key is None
