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
