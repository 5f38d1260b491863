"""Memory of the worker process itself, as the backends report it."""

from __future__ import annotations

import resource

import psutil


def rss_mb() -> float:
    """Current resident set size, MiB."""
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    # ru_maxrss is in KiB on Linux: the kernel's high-water mark for this process alone.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
