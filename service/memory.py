"""The C heap's hold on freed memory: glibc's arenas, limited; its mmap threshold, pinned; its free pages,
trimmed when idle.

glibc gives a thread that finds the heap's lock taken an arena of its own, up to 8 per core, and a
thread keeps using the arena it got. Each arena is a heap of its own: after a burst every one of them
holds pages that a live chunk pins, so the resident set grows with the number of threads that ever
allocated at once. ``limit_arenas`` (``malloc_arena_max``, 2 by default) makes all threads share a few.

glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and unmaps it
when it is freed, so the memory goes back to the kernel at once. The threshold is dynamic by default:
it starts at 128 KiB and, each time a mapped chunk is freed, rises to that chunk's size (up to 32 MiB
on 64-bit). After the first large tensors of a burst (stacked batches, a stability report's
Jacobians) are freed, allocations of that size come from the heap arenas instead, and one arena per
thread that allocated keeps its pages after ``free``. The resident set then steps up with new peaks
of concurrency, and only the top of each heap is ever trimmed back. Setting the threshold explicitly
(``mallopt``, or the ``MALLOC_MMAP_THRESHOLD_`` environment variable) turns the dynamic rule off.

The price of a mapped allocation is a page fault per 4 KiB page on first touch, every time. So the
threshold is a trade: at 128 KiB a batch-1 MNIST forward (its 784 × 256 input drive is 0.8 MB) maps
and faults its buffers on every call; at 1 MiB batch-1 buffers stay in the heap, and the batches and
reports whose buffers are megabytes, which are what build up arenas under concurrency, are mapped
and faulted in again for every batch. The service leaves glibc's rule by default
(``malloc_mmap_threshold_bytes = 0``): a deployment that values a flat resident set over large-batch
throughput sets it.

What the default costs in resident memory is given back when the load ends instead: ``IdleTrim`` calls
``malloc_trim(0)`` once the service has admitted no work for ``memory_trim_idle_s``. Since glibc 2.8
that walks every arena and returns each whole free page to the kernel (``madvise(MADV_DONTNEED)``),
not only the top of each heap, so the arenas that a burst's threads filled shrink back to what is in
use. Under load it never runs, so throughput pays nothing; the next burst faults its pages in again.
"""

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3          # <malloc.h>
M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def _set_mallopt(option: int, value: int, variable: str, what: str) -> bool:
    """``mallopt(option, value)`` unless the environment sets glibc's ``variable`` already (glibc has
    then read it at start-up) or the C library has no ``mallopt`` (musl, macOS). True when set; the
    variable is then exported, so that child processes (a spawned model worker) start with it."""
    if variable in os.environ:
        log.info("%s left to %s", what, variable)
        return False
    try:
        mallopt = _libc().mallopt
    except AttributeError:
        log.info("no mallopt in the C library: %s left to the C library", what)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(option, int(value)) != 1:
        return False
    os.environ[variable] = str(int(value))
    return True


def pin_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)``, which turns glibc's dynamic threshold off; True when the
    threshold is now fixed at ``nbytes`` (``MALLOC_MMAP_THRESHOLD_`` in the environment wins)."""
    return _set_mallopt(M_MMAP_THRESHOLD, nbytes, "MALLOC_MMAP_THRESHOLD_", "malloc mmap threshold")


def limit_arenas(count: int) -> bool:
    """``mallopt(M_ARENA_MAX, count)``: at most ``count`` heap arenas, shared by all threads. glibc
    otherwise gives threads up to 8 arenas per core, and each keeps pages that a trim cannot return
    while any chunk in them lives. True when the limit is set (``MALLOC_ARENA_MAX`` in the environment
    wins)."""
    return _set_mallopt(M_ARENA_MAX, count, "MALLOC_ARENA_MAX", "malloc arena count")


def resident_bytes() -> int | None:
    """This process's resident set (``/proc/self/statm``), None where there is no procfs."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def malloc_trim() -> int | None:
    """glibc's ``malloc_trim(0)``: every arena's whole free pages back to the kernel. Returns the bytes
    by which the resident set shrank (0 without procfs to tell), or None without ``malloc_trim``."""
    try:
        trim = _libc().malloc_trim
    except AttributeError:
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    before = resident_bytes()
    trim(0)
    after = resident_bytes()
    return 0 if before is None or after is None else before - after


class IdleTrim:
    """Trims the C heap (``malloc_trim``) once per spell of idleness.

    Every ``idle_s`` seconds it reads ``activity()``, a count of work admitted so far. When the count has
    not moved for a whole period, ``busy()`` is false, and work has been admitted since the last trim,
    it trims in a worker thread (the walk over the arenas takes their locks, not the GIL's turn of the
    event loop). So it runs between ``idle_s`` and ``2·idle_s`` after the last request, once, and never
    while requests keep arriving. ``on_trim(released_bytes)`` observes each trim.
    """

    def __init__(self, idle_s: float, activity: Callable[[], int], busy: Callable[[], bool],
                 on_trim: Callable[[int], None] | None = None):
        if not idle_s > 0:
            raise ValueError(f"idle_s must be > 0, got {idle_s}")
        self.idle_s = idle_s
        self._activity = activity
        self._busy = busy
        self._on_trim = on_trim
        self._task: asyncio.Task | None = None

    def start(self) -> "IdleTrim":
        self._task = asyncio.get_running_loop().create_task(self._run(), name="idle-malloc-trim")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        seen = trimmed_at = self._activity()
        while True:
            await asyncio.sleep(self.idle_s)
            now = self._activity()
            if now == seen and now != trimmed_at and not self._busy():
                released = await asyncio.to_thread(malloc_trim)
                if released is None:
                    log.info("no malloc_trim in the C library: idle trimming stops")
                    return
                trimmed_at = now
                if self._on_trim is not None:
                    self._on_trim(released)
            seen = now
