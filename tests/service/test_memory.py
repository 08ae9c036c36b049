"""``service.memory``: with the threshold pinned, a large allocation is mapped (and so returned to the
kernel when freed) even after a larger chunk was freed, which under glibc's dynamic rule raises the
threshold and sends the allocation to the heap. Counted with glibc's own ``mallinfo2().hblks`` (the
number of mapped chunks), in a fresh process each, since the threshold is process-wide."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
pinned = None
if sys.argv[1] == "pin":
    from service.memory import pin_mmap_threshold
    pinned = pin_mmap_threshold(128 * 1024)
libc.free(libc.malloc(4 << 20))      # a freed 4-MiB mapped chunk: the dynamic rule raises the threshold
before = libc.mallinfo2().hblks
chunk = libc.malloc(512 << 10)
mapped = libc.mallinfo2().hblks - before
libc.free(chunk)
import os
print(pinned, mapped, os.environ.get("MALLOC_MMAP_THRESHOLD_"))
"""

glibc_233 = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or tuple(map(int, platform.libc_ver()[1].split("."))) < (2, 33),
    reason="mallinfo2 needs glibc >= 2.33")


def _probe(mode: str, **env) -> tuple[str, str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO_ROOT, env=environ, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], out[1], out[2]


@glibc_233
def test_glibc_alone_sends_a_512k_allocation_to_the_heap_after_a_4m_chunk_was_freed():
    assert _probe("none") == ("None", "0", "None")


@glibc_233
def test_pinned_threshold_maps_the_same_allocation_and_is_passed_to_child_processes():
    assert _probe("pin") == ("True", "1", "131072")


@glibc_233
def test_an_explicit_malloc_mmap_threshold_in_the_environment_is_left_alone():
    assert _probe("pin", MALLOC_MMAP_THRESHOLD_="1048576") == ("False", "0", "1048576")


TRIM_PROBE = r"""
import ctypes
from service.memory import malloc_trim, resident_bytes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
chunks = [libc.malloc(64 << 10) for _ in range(2048)]      # 128 MiB below the mmap threshold: heap
for c in chunks:
    ctypes.memset(c, 1, 64 << 10)                         # touched: resident
for c in chunks[:-1]:
    libc.free(c)             # the last chunk stays live, so the heap's top cannot shrink by itself
before = resident_bytes()
released = malloc_trim()
print(before - resident_bytes(), released)
"""


@glibc_233
def test_malloc_trim_returns_free_pages_below_a_live_chunk_and_reports_them():
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], cwd=REPO_ROOT, check=True, capture_output=True,
                         text=True).stdout.split()
    shrunk, released = int(out[0]), int(out[1])
    assert shrunk > 100 << 20                  # of the 128 MiB freed, at least 100 went back to the kernel
    assert abs(released - shrunk) < 1 << 20      # the same measure, a few pages apart


def test_idle_trim_runs_once_per_idle_spell_and_never_while_work_arrives_or_runs(monkeypatch):
    import asyncio

    from service import memory

    trims: list[int] = []
    monkeypatch.setattr(memory, "malloc_trim", lambda: trims.append(1) or 4096)
    state = {"admitted": 0, "busy": False}
    observed: list[int] = []

    async def scenario():
        trim = memory.IdleTrim(0.05, activity=lambda: state["admitted"], busy=lambda: state["busy"],
                               on_trim=observed.append).start()
        await asyncio.sleep(0.3)
        assert trims == []                             # nothing admitted since the start: nothing to trim
        for _ in range(30):                            # work arrives every 10 ms for 0.3 s
            state["admitted"] += 1
            await asyncio.sleep(0.01)
        assert trims == []
        await asyncio.sleep(0.3)                       # idle: one trim, and only one
        assert trims == [1] and observed == [4096]
        state["admitted"] += 1
        state["busy"] = True                           # a long request: admitted, still running
        await asyncio.sleep(0.3)
        assert trims == [1]
        state["busy"] = False
        await asyncio.sleep(0.3)
        assert trims == [1, 1]
        await trim.stop()

    asyncio.run(scenario())


def test_the_service_trims_after_its_requests_and_counts_it(service, client, read_metric):
    import time

    import httpx

    def trims() -> float:
        return read_metric(httpx.get(service.url + "/metrics").text, "afrnn_memory_trims_total")

    time.sleep(2.5)                                # the trim owed to earlier tests' requests is done
    before = trims()
    answer = client.post("/classify", json={"model": "mnist", "pixels": [0] * 784, "scale": 255})
    assert answer.status_code == 200
    deadline = time.monotonic() + 10
    while trims() == before and time.monotonic() < deadline:       # idle_s = 1 s: trimmed within 2 s
        time.sleep(0.2)
    after = trims()
    assert after == before + 1
    time.sleep(2.5)                                # no work since: no second trim
    assert trims() == after


ARENA_PROBE = r"""
import ctypes, sys, threading
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
limited = None
if sys.argv[1] == "limit":
    from service.memory import limit_arenas
    limited = limit_arenas(2)
barrier = threading.Barrier(8)

def allocate():
    barrier.wait()                        # all eight threads alive at once: none can inherit a freed arena
    chunks = [libc.malloc(1000) for _ in range(1000)]
    barrier.wait()
    for chunk in chunks:
        libc.free(chunk)

threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(limited, flush=True)
libc.malloc_stats()                       # glibc's own per-arena report, on stderr
"""


def _arenas(mode: str, **env) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    run = subprocess.run([sys.executable, "-c", ARENA_PROBE, mode], cwd=REPO_ROOT, env=environ, check=True,
                         capture_output=True, text=True)
    return run.stdout.strip(), run.stderr.count("Arena ")


@glibc_233
def test_limiting_arenas_makes_eight_allocating_threads_share_two():
    assert _arenas("limit") == ("True", 2)
    limited, unlimited = _arenas("none")
    assert limited == "None" and unlimited > 2          # glibc alone: a new arena per contending thread
