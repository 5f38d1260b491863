"""Memory of a worker process as the backends report it (their own), and as the paired engine reads it (a live
worker's, and what the host has left) before loading a second side beside a first."""

from __future__ import annotations

import resource

import psutil


def rss_mb(pid: int | None = None) -> float:
    """Current resident set size of this process (or of `pid`; psutil.Error when it is gone), MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def available_mb() -> float:
    """Memory the host can still give processes without swapping, MiB."""
    return psutil.virtual_memory().available / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    # ru_maxrss is in KiB on Linux: the kernel's high-water mark for this process alone.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
