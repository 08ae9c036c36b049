"""The one exception of the streaming package: a broken rule, with its close reason (and so its
WebSocket close code and HTTP status, ``afrnn_schemas.stream.CLOSE_CODES``)."""

from collections.abc import Sequence

from afrnn_schemas.stream import CLOSE_CODES, CloseReason


class StreamRuleError(Exception):
    """``reason`` names the rule; ``loc`` the offending field of the message, if any."""

    def __init__(self, reason: CloseReason, detail: str, loc: Sequence[str | int] | None = None,
                 retry_after_s: int | None = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.loc = list(loc) if loc is not None else None
        self.retry_after_s = retry_after_s

    @property
    def close_code(self) -> int:
        return CLOSE_CODES[self.reason][0]

    @property
    def http_status(self) -> int:
        return CLOSE_CODES[self.reason][1]
