"""The one place where a file inside a run directory (an A/B or bisect folder, a cache record) is opened for writing.

A path that is a symbolic link, or that resolves outside its folder through one, is refused in one line
(HarnessInputError, exit 2) instead of followed: a resumed run whose cells.jsonl is a link would otherwise append
to the link's target, anywhere on the machine. Files are opened with O_NOFOLLOW, so a link made between the
check and the open is refused by the system too; whole files are written to a fresh temporary and renamed over
the name, which replaces a link rather than writing through it."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

from harness.core.errors import HarnessInputError


def checked_path(folder: Path, name: str | Path) -> Path:
    """`folder / name`, refused when it or a folder between is a link, or when it resolves outside `folder` (the
    folder itself may be reached through links: a results folder on another disk)."""
    folder = Path(folder)
    path = folder / name
    here = folder
    for part in Path(name).parts:
        here = here / part
        if here.is_symlink():
            raise HarnessInputError(str(here), None, None, "is a symbolic link: refusing to write through it")
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise HarnessInputError(str(path), None, None, f"resolves outside {folder}: refusing to write there") from None
    return path


def refuse_links(folder: Path) -> None:
    """Refuse a folder holding a symbolic link anywhere below it (checked before a run or a resume writes into it,
    so nothing is measured that could not be recorded)."""
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            if os.path.islink(os.path.join(root, name)):
                raise HarnessInputError(os.path.join(root, name), None, None,
                                        "is a symbolic link inside the run directory: refusing to write through it")


def _open_fd(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():  # a link appeared at the name
            raise HarnessInputError(str(path), None, None, "is a symbolic link: refusing to write through it") from None
        raise


def open_for_append(folder: Path, name: str | Path) -> IO[bytes]:
    """The file opened for appending (created if missing), binary."""
    path = checked_path(folder, name)
    return os.fdopen(_open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")


def open_for_write(folder: Path, name: str | Path, binary: bool = False) -> IO:
    """The file opened for writing from its start (created or truncated)."""
    path = checked_path(folder, name)
    fd = _open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")


def write_whole(folder: Path, name: str | Path, text: str) -> Path:
    """The file replaced as a whole: readers see the old content or the new one, never a part."""
    path = checked_path(folder, name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(_open_fd(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
