"""Synthetic pictures, the same on every machine: what vision cells and image requests send."""

from __future__ import annotations

import numpy as np


def synthetic_image(index: int, size: int) -> np.ndarray:
    """A deterministic RGB picture (gradients, rings and a checkerboard; not noise, so image codecs
    and resizers see ordinary content), shape (size, size, 3), uint8."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    phase = index * 0.7
    r = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + phase))
    g = 0.5 + 0.5 * np.cos(2 * np.pi * (8 * np.hypot(x - 0.5, y - 0.5) - phase))
    b = ((np.floor(x * 8) + np.floor(y * 8) + index) % 2).astype(np.float32)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
