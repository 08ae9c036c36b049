"""``AFRNN_LOG_FORMAT=text`` keeps every field of the JSON line, as ``key=value`` pairs (issue 15)."""

import json
import logging
import shlex

import pytest

from service.log_format import JSONLineFormatter, KeyValueTextFormatter, configure_logging

FIELDS = {"model_dir": "/models", "device": "cpu", "torch_threads": 1, "max_queue_delay_ms": 0.0,
          "note": 'two words, a "quote" and a=b', "models": ["mnist-afrnn", "pendulum-afrnn"]}


def _record(msg: str = "starting", **extra) -> logging.LogRecord:
    record = logging.LogRecord("service.app", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def _parse_text(line: str) -> tuple[str, dict[str, str]]:
    """Independent reading of a text line: shell-style tokens, then ``key=value`` after the message."""
    head, _, tail = line.partition(": ")
    tokens = shlex.split(tail)
    pairs = {}
    while tokens and "=" in tokens[-1]:
        key, _, value = tokens.pop().partition("=")
        pairs[key] = value
    return head + ": " + " ".join(tokens), pairs


def test_text_line_carries_every_json_field_as_key_value():
    record = _record(**FIELDS)
    text = KeyValueTextFormatter().format(record)
    as_json = json.loads(JSONLineFormatter().format(record))
    head, pairs = _parse_text(text)
    assert head.endswith("INFO service.app: starting") and head.startswith(as_json["ts"])
    assert set(pairs) == set(FIELDS)
    for key, value in FIELDS.items():
        # strings come back verbatim; other values as their JSON text
        expected = value if isinstance(value, str) else json.dumps(value)
        assert pairs[key] == expected, key


def test_text_line_without_fields_is_the_plain_message_and_a_traceback_follows():
    assert KeyValueTextFormatter().format(_record("ready")).endswith("INFO service.app: ready")
    try:
        raise ValueError("bad checkpoint")
    except ValueError:
        import sys
        record = logging.LogRecord("service.registry", logging.ERROR, __file__, 1, "load failed", None,
                                   sys.exc_info())
    record.model = "mnist-afrnn"
    first, *rest = KeyValueTextFormatter().format(record).splitlines()
    assert first.endswith("ERROR service.registry: load failed model=mnist-afrnn")
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: bad checkpoint"


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_text_sends_fields_to_stderr(capsys, restore_root_logging):
    configure_logging("info", "text")
    logging.getLogger("service.app").info("starting", extra={"device": "cpu", "model_dir": "/models"})
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "service.app" in ln]
    assert _parse_text(line)[1] == {"device": "cpu", "model_dir": "/models"}
