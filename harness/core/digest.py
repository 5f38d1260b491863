"""Stable short names of things: a hash of their JSON form (cache entries, change points, site pages)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(obj: Any, length: int = 16) -> str:
    """Stable short hash of a JSON-able object."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
