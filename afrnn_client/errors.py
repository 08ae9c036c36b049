"""Exceptions of the client: every failure carries what the server said."""

from typing import Any


class AfrnnError(Exception):
    """Base class of the client's errors."""


class ApiError(AfrnnError):
    """The server answered with an error status.

    Attributes:
        status: the HTTP status (401, 404, 413, 422, 503, 504, …).
        detail: the server's message (for a 422, the first issue's ``msg``).
        field: the path of the field the server named, without the leading 'body' / 'query'
            (e.g. ``("images", 3)``); None when the error names none.
        issues: every issue of a 422 body (``[{"loc": [...], "msg": ..., "type": ...}]``).
        retry_after_s: the server's Retry-After, if any.
    """

    def __init__(self, status: int, detail: str, field: tuple[str | int, ...] | None = None,
                 issues: list[dict[str, Any]] | None = None, retry_after_s: float | None = None):
        where = f" (field {'.'.join(str(p) for p in field)})" if field else ""
        super().__init__(f"HTTP {status}{where}: {detail}")
        self.status = status
        self.detail = detail
        self.field = field
        self.issues = issues or []
        self.retry_after_s = retry_after_s


class TransportError(AfrnnError):
    """No answer: the connection failed or timed out (after the retries the policy allows)."""


class StreamClosedError(AfrnnError):
    """The server closed a stream: ``code`` (WebSocket close code), ``reason`` (the rule, as in
    ``afrnn_schemas.stream.CLOSE_CODES``), ``detail`` and the ``field`` it named."""

    def __init__(self, code: int, reason: str, detail: str, field: tuple[str | int, ...] | None = None):
        where = f" (field {'.'.join(str(p) for p in field)})" if field else ""
        super().__init__(f"stream closed with {code} {reason}{where}: {detail}")
        self.code = code
        self.reason = reason
        self.detail = detail
        self.field = field
