"""Child processes that must not outlive their parent (workers, local servers)."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """Run in the child before exec: get SIGKILL when the parent dies, so no orphan keeps running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
