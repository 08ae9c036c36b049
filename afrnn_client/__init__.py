"""Typed Python client of the AFRNN service (sync and async, httpx; streams over WebSocket or HTTP).

The request and response types are the service's own pydantic schemas (``afrnn_schemas``), and
the client imports no torch. See ``afrnn_client.client`` for an example.
"""

from afrnn_client.client import AfrnnClient, AsyncAfrnnClient
from afrnn_client.errors import AfrnnError, ApiError, StreamClosedError, TransportError
from afrnn_client.retry import NO_RETRY, RetryPolicy

__all__ = ["NO_RETRY", "AfrnnClient", "AfrnnError", "ApiError", "AsyncAfrnnClient", "RetryPolicy",
           "StreamClosedError", "TransportError"]
