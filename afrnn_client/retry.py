"""When to retry: on 503 and on connection errors, honouring Retry-After, within a total time budget.

A 4xx is never retried (the request itself is wrong); neither is any other 5xx (a 504 means the
request already used the server's whole timeout). Without a Retry-After the waits grow as
``backoff_s · 2^attempt`` up to ``max_backoff_s``. A retry that would end past ``max_total_s`` after
the first attempt started is not made: the last error is raised instead.
"""

import email.utils
import time
from dataclasses import dataclass

RETRY_STATUSES = frozenset({503})


@dataclass(frozen=True)
class RetryPolicy:
    max_total_s: float = 30.0      # first attempt → last retry's start, waits included
    max_attempts: int = 6          # attempts in all (1 = never retry)
    backoff_s: float = 0.25        # wait after the first failure without Retry-After, then doubled
    max_backoff_s: float = 5.0

    def wait_s(self, attempt: int, started: float, retry_after_s: float | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (0-based ``attempt`` just failed), or None to
        give up. ``started`` is the ``time.monotonic()`` of the first attempt."""
        if attempt + 1 >= self.max_attempts:
            return None
        wait = retry_after_s if retry_after_s is not None else min(self.max_backoff_s,
                                                                    self.backoff_s * 2 ** attempt)
        if time.monotonic() + wait - started > self.max_total_s:
            return None
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
