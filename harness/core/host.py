"""Run metadata: host, library versions, git commit."""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from harness.core.schema import HostInfo

VERSIONED_PACKAGES = (
    "openvino",
    "openvino-genai",
    "openvino-tokenizers",
    "optimum-intel",
    "optimum",
    "nncf",
    "transformers",
    "torch",
    "ov-genai-harness",
)


def _cpuinfo() -> tuple[str | None, list[str]]:
    model: str | None = None
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "model name" and model is None:
                model = v.strip()
            elif k == "flags" and not flags:
                flags = sorted(v.split())
            if model and flags:
                break
    except OSError:
        model = platform.processor() or None
    return model, flags


def host_info() -> HostInfo:
    model, flags = _cpuinfo()
    return HostInfo(
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()} ({platform.platform()})",
        python=platform.python_version(),
        cpu_model=model,
        cpu_flags=flags,
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True),
        memory_total_mb=round(psutil.virtual_memory().total / 2**20, 1),
    )


def fingerprint(host: HostInfo) -> str:
    """One physical machine's identity: hostname, CPU model, logical cores, total memory. Cached measurements of
    the machine are keyed by it (a host whose hardware changes is measured again), and cluster nodes that share
    it share one machine."""
    key = [host.hostname, host.cpu_model, host.logical_cores, round(host.memory_total_mb)]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a local server or cluster the harness starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions, read from metadata so nothing heavy gets imported."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(repo: Path | None = None) -> str | None:
    """The harness's git commit (with '-dirty' for local changes), or None outside a checkout."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
