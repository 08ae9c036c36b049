"""Stability reports of served models (``model.stability``), computed off the event loop and cached.

A report runs the model step by step with Jacobians, eigenvalues and a QR-based Lyapunov spectrum: it
is CPU-heavy (seconds). So:

* it runs in the app's work lane (``service.admission.WorkLane``: bounded queue, concurrency cap and
  the request's deadline, shared with the physics references), or without one in a private single
  worker thread (one report at a time; the models' batchers keep serving);
* it stops at the request's deadline: ``stability_report`` checks it between its parts and at every
  step of its step-by-step loops, so a report past its time frees its slot within a step (504);
* the report for the *default input* is cached per (model, sections, k), in an LRU of
  ``service.app.STABILITY_CACHE_SIZE`` entries, and concurrent requests for the same uncomputed key share one
  computation; the PNG of the figures is cached the same way;
* a report for a caller's own input sample is computed each time (never cached).

Default input: for a classifier, ``stability_report``'s own default (zeros of the trained sequence
length, i.e. the mean image after normalisation); for the pendulum, the network input of the trained
protocol for the resting state s₀ = 0 (``network_inputs``: s₀, then the constant 1.0), since the
pendulum model never sees an all-zero sequence. A caller's sample is decoded and normalised exactly as
for ``/classify`` or ``/pendulum/predict``.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import torch

from model.stability import SECTIONS, StabilityArgumentError, StabilityReport, stability_report
from service.admission import WorkLane, check_deadline, request_deadline
from service.errors import InputError
from service.registry import ServedModel

CacheKey = tuple[str, tuple[str, ...] | None, int, str]

# ``stability_report``'s arguments that come from a request field (x is the decoded sample)
_REQUEST_FIELD_OF_ARGUMENT = {"sections": ("sections",), "lyapunov_k": ("lyapunov_k",), "x": ("pixels",)}


class StabilityReports:
    """The stability endpoints' engine: input building, the worker thread and the caches."""

    def __init__(self, cache_size: int, lane: WorkLane | None = None):
        self.cache_size = cache_size
        self.lane = lane
        self._cache: OrderedDict[CacheKey, Any] = OrderedDict()
        self._inflight: dict[CacheKey, asyncio.Future] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stability")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- request checks and inputs ----------------------------------------------------------------
    @staticmethod
    def check_options(entry: ServedModel, sections: list[str] | None, lyapunov_k: int
                      ) -> tuple[str, ...] | None:
        """Validated, order-normalised sections (None = all); raises ``InputError`` naming the field."""
        if sections is not None:
            unknown = [s for s in sections if s not in SECTIONS]
            if unknown:
                raise InputError(("sections",), f"unknown section(s) {unknown}; valid sections: "
                                                f"{list(SECTIONS)}")
            if not sections:
                raise InputError(("sections",), f"give at least one section, or omit the field for all of "
                                                f"{list(SECTIONS)}")
        state_size = int(entry.module.state_size)
        if lyapunov_k > state_size:
            raise InputError(("lyapunov_k",), f"lyapunov_k must be ≤ the state size D = {state_size} of "
                                              f"model {entry.name!r}, got {lyapunov_k}")
        return None if sections is None else tuple(s for s in SECTIONS if s in set(sections))

    @staticmethod
    def default_input(entry: ServedModel) -> torch.Tensor | None:
        return entry.api.stability_default_input()

    @staticmethod
    def sample_input(entry: ServedModel, pixels: Any, scale: float | None, initial_state: dict | None,
                     units: str, steps: int | None, max_steps: int) -> torch.Tensor:
        """The network input (1, T, C) for a caller's sample, normalised as for inference."""
        api = entry.api
        given = {"pixels": pixels, "initial_state": initial_state}
        wrong = next((field for field, value in given.items()
                      if value is not None and field != api.SAMPLE_FIELD), None)
        if wrong is not None:
            kind = "a classifier" if api.SAMPLE_FIELD == "pixels" else "a pendulum model"
            raise InputError((wrong,), f"model {entry.name!r} is {kind}: give `{api.SAMPLE_FIELD}`")
        return api.stability_sample(pixels=pixels, scale=scale, initial_state=initial_state, units=units,
                                    steps=steps, max_steps=max_steps)

    # -- computing --------------------------------------------------------------------------------
    def _compute(self, entry: ServedModel, x: torch.Tensor | None, sections: tuple[str, ...] | None,
                 lyapunov_k: int, deadline: float | None) -> StabilityReport:
        """The report, stopped (``RequestTimeoutError`` → 504) at the first check after ``deadline``:
        a report never holds its lane slot past the request's time."""
        spec = entry.manifest.input
        options: dict[str, Any] = dict(sections=None if sections is None else list(sections),
                                       lyapunov_k=lyapunov_k,
                                       interrupt=partial(check_deadline, deadline, "the stability report"))
        if x is None:
            options.update(sequence_length=spec.sequence_length, input_size=spec.channels)
        try:
            return stability_report(entry.module, None if x is None else x.to(entry.api.device), **options)
        except StabilityArgumentError as err:   # a rule of the analysis (e.g. a section an LSTM lacks) → 422
            raise InputError(_REQUEST_FIELD_OF_ARGUMENT.get(err.argument, ()), str(err)) from None

    async def _run(self, kind: str, fn: Callable, *args) -> Any:
        """``fn(*args)`` in the work lane; ``kind`` names what and for which model (a report of the
        pendulum and one of CIFAR-10 differ by orders of magnitude), one unit per job."""
        if self.lane is not None:
            return await self.lane.run(fn, *args, kind=kind, work=1.0)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def report(self, entry: ServedModel, sections: tuple[str, ...] | None, lyapunov_k: int,
                     x: torch.Tensor | None = None) -> tuple[StabilityReport, bool]:
        """(report, served_from_cache) — the default-input report is cached; a given ``x`` never is."""
        kind = f"stability report of {entry.name}"
        if x is not None:
            return await self._run(kind, self._compute, entry, x, sections, lyapunov_k,
                                   request_deadline.get()), False
        key = (entry.name, sections, lyapunov_k, "report")
        # the shared computation runs under the deadline of the request that started it, as the task
        # awaiting it does (a later request for the same key shares both, and its 504)
        return await self._cached(key, lambda: self._run(kind, self._compute, entry,
                                                         self.default_input(entry), sections, lyapunov_k,
                                                         request_deadline.get()))

    async def png(self, entry: ServedModel, sections: tuple[str, ...] | None, lyapunov_k: int
                  ) -> tuple[bytes, bool]:
        """The default-input report's figures as PNG bytes, cached like the report."""
        async def render() -> bytes:
            # matplotlib is imported on the first PNG request, not at start-up, which it would slow
            # down (docs/performance.md, "Fixed costs")
            from model.stability.plots import render_report_png

            report, _ = await self.report(entry, sections, lyapunov_k)
            return await self._run(f"stability figure of {entry.name}", render_report_png, report)
        return await self._cached((entry.name, sections, lyapunov_k, "png"), render)

    async def _cached(self, key: CacheKey, compute: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], True
        task = self._inflight.get(key)
        shared = task is not None
        if task is None:
            # A task of its own: a caller that disconnects does not cancel the others' computation.
            task = asyncio.ensure_future(compute())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._store(key, t))
        return await asyncio.shield(task), shared

    def _store(self, key: CacheKey, task: asyncio.Task) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None or self.cache_size == 0:
            return
        self._cache[key] = task.result()
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
