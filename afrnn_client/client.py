"""``AfrnnClient`` (sync) and ``AsyncAfrnnClient``: one method per endpoint, typed with the service's
own pydantic schemas.

    from afrnn_client import AfrnnClient
    with AfrnnClient("http://127.0.0.1:8000") as api:          # API key: argument or AFRNN_API_KEY
        answer = api.classify(model="mnist", pixels=[0] * 784, scale=255, top_k=3)
        answer.predictions[0].label
        with api.stream("mnist", scale=255, threshold=0.9) as s:
            for pixel in pixels:
                update = s.send([pixel])                        # anytime prediction
            final = s.end()                                     # == /classify after 784 steps

Requests are retried on 503 and on connection errors, waiting what ``Retry-After`` says (else an
exponential backoff), within ``RetryPolicy.max_total_s``; a 4xx is never retried. A failed call raises
``ApiError`` (status, detail, the field the server named) or ``TransportError``.
"""

import asyncio
import time
from typing import Any, Literal

import httpx

from afrnn_client import _calls
from afrnn_client._calls import Call, error_of
from afrnn_client.errors import TransportError
from afrnn_client.retry import RETRY_STATUSES, RetryPolicy
from afrnn_client.streams import AsyncHttpStream, AsyncWebSocketStream, HttpStream, WebSocketStream
from afrnn_schemas import (
    ClassifyRequest,
    ClassifyResponse,
    Liveness,
    LoadResult,
    ModelDetail,
    ModelList,
    ModelVersion,
    PendulumRequest,
    PendulumResponse,
    Readiness,
    RepositoryEntry,
    StabilityReport,
    StabilityRequest,
    StreamOpen,
    UnloadResult,
)

Transport = Literal["websocket", "http"]


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None, timeout_s: float,
                 retry: RetryPolicy | None):
        self.base_url, self._headers = _calls.settings(base_url, api_key)
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()

    def _retry_wait(self, call: Call, attempt: int, started: float,
                    retry_after: float | None) -> float | None:
        return self.retry.wait_s(attempt, started, retry_after) if call.retry else None


class AfrnnClient(_Base):
    """Synchronous client. ``transport``: an ``httpx`` transport (tests, proxies); ``retry``: the policy."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, timeout_s, retry)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout_s,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "AfrnnClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _do(self, call: Call) -> Any:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, json=call.json, params=call.params)
            except httpx.TransportError as err:
                wait = self._retry_wait(call, attempt, started, None)
                if wait is None:
                    raise TransportError(f"{call.method} {call.path}: {type(err).__name__}: {err}") from err
            else:
                if response.status_code in call.ok:
                    return call.parse(response)
                error = error_of(response)
                wait = (self._retry_wait(call, attempt, started, error.retry_after_s)
                        if response.status_code in RETRY_STATUSES else None)
                if wait is None:
                    raise error
            time.sleep(wait)
            attempt += 1

    # -- endpoints --------------------------------------------------------------------------------
    def classify(self, request: ClassifyRequest | None = None, **fields: Any) -> ClassifyResponse:
        """``POST /classify``: a ``ClassifyRequest`` or its fields (``pixels``/``images``, ``scale``, …)."""
        return self._do(_calls.classify(request, fields))

    def predict_pendulum(self, request: PendulumRequest | None = None, **fields: Any) -> PendulumResponse:
        """``POST /pendulum/predict``: a ``PendulumRequest`` or its fields."""
        return self._do(_calls.predict_pendulum(request, fields))

    def models(self) -> ModelList:
        """``GET /models``."""
        return self._do(_calls.models())

    def model(self, name: str) -> ModelDetail:
        """``GET /models/{name}``."""
        return self._do(_calls.model(name))

    def versions(self, name: str) -> list[ModelVersion]:
        """The repository versions of ``name`` (``GET /models/{name}``'s ``versions``)."""
        return self.model(name).versions

    def index(self) -> list[RepositoryEntry]:
        """The model repository's index: every version, READY, LOADING or UNAVAILABLE with the reason.
        The repository calls need a client made with the admin key (``api_key=<AFRNN_ADMIN_KEY>``)."""
        return self._do(_calls.index())

    def load(self, name: str) -> LoadResult:
        """(Re)load ``name`` from the server's model dir (``model_control = explicit``); a version that fails
        raises ``ApiError`` (400) naming it, and the serving version is untouched."""
        return self._do(_calls.load(name))

    def unload(self, name: str) -> UnloadResult:
        """Take ``name`` out of traffic; its versions drain, then are freed."""
        return self._do(_calls.unload(name))

    def stability(self, name: str, request: StabilityRequest | None = None, **fields: Any) -> StabilityReport:
        """``POST /models/{name}/stability``."""
        return self._do(_calls.stability(name, request, fields))

    def stability_png(self, name: str, sections: list[str] | None = None, lyapunov_k: int = 16) -> bytes:
        """``GET /models/{name}/stability.png``: the PNG's bytes."""
        return self._do(_calls.stability_png(name, sections, lyapunov_k))

    def health_live(self) -> Liveness:
        """``GET /health/live``."""
        return self._do(_calls.health_live())

    def health_ready(self) -> Readiness:
        """``GET /health/ready`` (``status`` is 'not_ready' while the server answers 503)."""
        return self._do(_calls.health_ready())

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text."""
        return self._do(_calls.metrics())

    def stream(self, model: str, *, scale: int | None = None, threshold: float | None = None,
               top_k: int = 1, transport: Transport = "websocket") -> WebSocketStream | HttpStream:
        """Open a stream (``/models/{model}/stream``, or the HTTP fallback with ``transport='http'``)."""
        options = StreamOpen(scale=scale, threshold=threshold, top_k=top_k)
        if transport == "http":
            return HttpStream(self._http, model, options)
        return WebSocketStream(self.base_url, self._headers, model, options, self.timeout_s)


class AsyncAfrnnClient(_Base):
    """The same methods as ``AfrnnClient``, as coroutines."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, timeout_s, retry)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout_s,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncAfrnnClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _do(self, call: Call) -> Any:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, json=call.json,
                                                    params=call.params)
            except httpx.TransportError as err:
                wait = self._retry_wait(call, attempt, started, None)
                if wait is None:
                    raise TransportError(f"{call.method} {call.path}: {type(err).__name__}: {err}") from err
            else:
                if response.status_code in call.ok:
                    return call.parse(response)
                error = error_of(response)
                wait = (self._retry_wait(call, attempt, started, error.retry_after_s)
                        if response.status_code in RETRY_STATUSES else None)
                if wait is None:
                    raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def classify(self, request: ClassifyRequest | None = None, **fields: Any) -> ClassifyResponse:
        return await self._do(_calls.classify(request, fields))

    async def predict_pendulum(self, request: PendulumRequest | None = None, **fields: Any
                               ) -> PendulumResponse:
        return await self._do(_calls.predict_pendulum(request, fields))

    async def models(self) -> ModelList:
        return await self._do(_calls.models())

    async def model(self, name: str) -> ModelDetail:
        return await self._do(_calls.model(name))

    async def versions(self, name: str) -> list[ModelVersion]:
        return (await self.model(name)).versions

    async def index(self) -> list[RepositoryEntry]:
        return await self._do(_calls.index())

    async def load(self, name: str) -> LoadResult:
        return await self._do(_calls.load(name))

    async def unload(self, name: str) -> UnloadResult:
        return await self._do(_calls.unload(name))

    async def stability(self, name: str, request: StabilityRequest | None = None, **fields: Any
                        ) -> StabilityReport:
        return await self._do(_calls.stability(name, request, fields))

    async def stability_png(self, name: str, sections: list[str] | None = None,
                            lyapunov_k: int = 16) -> bytes:
        return await self._do(_calls.stability_png(name, sections, lyapunov_k))

    async def health_live(self) -> Liveness:
        return await self._do(_calls.health_live())

    async def health_ready(self) -> Readiness:
        return await self._do(_calls.health_ready())

    async def metrics(self) -> str:
        return await self._do(_calls.metrics())

    async def stream(self, model: str, *, scale: int | None = None, threshold: float | None = None,
                     top_k: int = 1, transport: Transport = "websocket"
                     ) -> AsyncWebSocketStream | AsyncHttpStream:
        options = StreamOpen(scale=scale, threshold=threshold, top_k=top_k)
        if transport == "http":
            return await AsyncHttpStream.connect(self._http, model, options)
        return await AsyncWebSocketStream.connect(self.base_url, self._headers, model, options,
                                                  self.timeout_s)
