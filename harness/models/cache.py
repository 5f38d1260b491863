"""Cache-entry plumbing shared by the synthetic builder and the IR exporter.

An entry is a directory published by one atomic rename of a finished temp dir; a JSON
manifest inside it proves it is complete. Builders of one entry serialise on a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_METADATA_BYTES, load_json
from harness.records.run_files import write_whole

MiB = 1024 * 1024
BIG_FILE = 256 * MiB
EDGE = 16 * MiB


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def fingerprint_file(path: Path) -> str:
    """Content fingerprint for cache keys.

    Files over 256 MiB hash only their size plus the first and last 16 MiB: keys of multi-GB
    checkpoints stay fast, at the cost of missing an edit confined to the middle of one.
    """
    size = path.stat().st_size
    if size <= BIG_FILE:
        return sha256_file(path)
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(EDGE))
        f.seek(size - EDGE)
        h.update(f.read(EDGE))
    return "partial:" + h.hexdigest()


def iter_files(root: Path) -> Iterator[Path]:
    """Regular files under root, sorted; hidden entries (.git, .cache, ...) are not model content."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def fingerprint_dir(root: Path, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """Relative path -> fingerprint of every file except the relative paths in `exclude`."""
    files = ((p.relative_to(root).as_posix(), p) for p in iter_files(root))
    return {rel: fingerprint_file(p) for rel, p in files if rel not in exclude}


def file_manifest(root: Path, exclude: str) -> dict[str, dict[str, Any]]:
    """Relative path -> size and full sha256 of every file except `exclude`."""
    return {
        p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in iter_files(root)
        if p.relative_to(root).as_posix() != exclude
    }


def verify_manifest(root: Path, files: dict[str, dict[str, Any]], hashes: bool = True) -> str | None:
    """None if every listed file exists with its size (and, with `hashes`, its sha256), else what is wrong."""
    for rel, want in files.items():
        p = root / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != want["size"]:
            return f"{rel} has {p.stat().st_size} bytes, expected {want['size']}"
    if not hashes:
        return None
    # sizes first: a truncation is found without hashing anything
    for rel, want in files.items():
        if sha256_file(root / rel) != want["sha256"]:
            return f"{rel} does not match its sha256"
    return None


def dir_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@contextmanager
def entry_lock(entry: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive lock for building `entry`, held on a sibling lock file; `on_wait` runs if it is taken."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.parent / f".{entry.name}.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def new_temp_dir(entry: Path) -> Path:
    """Empty build dir beside `entry` (same filesystem, so the final rename is atomic).

    Call under the entry lock: leftovers of crashed builds of this entry are removed first.
    """
    for old in entry.parent.glob(f".tmp-{entry.name}-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=entry.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    return tmp


def publish(tmp: Path, entry: Path) -> None:
    """Atomically move a finished build into place, replacing a bad entry if one is there."""
    if entry.exists():
        shutil.rmtree(entry)
    os.rename(tmp, entry)


def read_json(path: Path) -> dict[str, Any] | None:
    """A cache record (a JSON object), or None when it is missing or damaged: the entry is then built again."""
    try:
        data: dict[str, Any] = load_json(path, "cache record", MAX_METADATA_BYTES)
    except HarnessInputError:
        return None
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_json_whole(path: Path, data: dict[str, Any]) -> None:
    """write_json for a record other processes may read meanwhile: they find it whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path.parent, path.name, json.dumps(data, indent=2, sort_keys=True) + "\n")


def default_cache_dir() -> Path:
    """HARNESS_CACHE_DIR, else the user's cache folder: every command and the pytest plugin read it here."""
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ov-genai-harness"
