"""Process logging: JSON lines (one object per record) or plain text, for our loggers and uvicorn's.

A JSON line has ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``msg``, any ``extra={...}`` fields
passed to the logging call, and ``exc`` (the formatted traceback) when there is one::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "service.access",
     "msg": "request", "method": "POST", "path": "/classify", "status": 200, "duration_ms": 6.1}

A text line carries the same fields as ``key=value`` pairs after the message (values with spaces,
quotes or ``=`` are JSON-quoted), then the traceback on the following lines::

    2024-05-01T12:00:00.123Z INFO service.access: request method=POST path=/classify status=200 ...
"""

import json
import logging
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is emitted.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}     # uvicorn adds color_message: the msg with ANSI colours


def _extra_fields(record: logging.LogRecord) -> dict:
    """The fields passed with ``extra=`` (everything a bare LogRecord does not have)."""
    return {key: value for key, value in vars(record).items()
            if key not in _RECORD_FIELDS and not key.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JSONLineFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage(), **_extra_fields(record)}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text_value(value) -> str:
    """``value`` as it appears after ``key=``: bare when unambiguous, else JSON-quoted."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueTextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <msg> key=value ...``: the JSON line's fields, readable by eye."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = " ".join(f"{key}={_text_value(value)}" for key, value in _extra_fields(record).items())
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Send the root logger (and uvicorn's loggers, which then propagate to it) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONLineFormatter())
    else:
        handler.setFormatter(KeyValueTextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(level.upper())
    # The service writes its own structured access log (service.access, see service.middleware).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
