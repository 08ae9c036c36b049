"""The C heap's hold on freed memory: glibc's mmap threshold, pinned.

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
"""

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3          # <malloc.h>


def pin_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)`` when the C library is glibc and the environment does not
    set ``MALLOC_MMAP_THRESHOLD_`` already (which glibc has then read at start-up); True when the
    threshold is now fixed at ``nbytes``. The variable is then set for child processes (a spawned
    model worker's glibc reads it at its start)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        log.info("malloc mmap threshold left to MALLOC_MMAP_THRESHOLD_")
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):        # not glibc (musl, macOS): nothing to pin
        log.info("no mallopt in the C library: malloc mmap threshold not pinned")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(nbytes)) != 1:
        return False
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(int(nbytes))   # for child processes (model workers)
    return True
