"""Data sets, training, evaluation and TorchScript export for AFRNN models."""

import os

# A training step allocates a few (T, N, D) buffers (about 100 MB each for pixel MNIST: states, tanh
# outputs, gradients) and frees them at its end; glibc maps such blocks afresh every step, so each step
# pays a page fault per 4 KiB. Transparent huge pages (torch's CPU allocator, with THP in "madvise"
# mode) take one per 2 MiB; docs/performance.md has the step times with and without. torch reads the
# variable once, at its first allocation, so it is set before torch is imported; an operator's own
# value wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
