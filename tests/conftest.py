from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Models built for tests live in the repo's ignored .cache/test (reused across test runs)."""
    path = Path(os.environ.get("HARNESS_TEST_CACHE", ROOT / ".cache" / "test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_cli(*args: str, cache: Path | None = None, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` the way a user would; returns the completed process."""
    env = dict(os.environ)
    if cache is not None:
        env["HARNESS_CACHE_DIR"] = str(cache)
    # keep test runs out of the user's history database
    env.setdefault("HARNESS_HISTORY_URL", f"sqlite:///{ROOT / '.cache' / 'test-history.sqlite'}")
    env.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or ROOT)
