"""The server a serving cell loads: `harness serve` started on loopback for the suite's `local` (and stopped
with the cell), or a running server reached by its URL, with the API key read from the environment variable
the suite names (never written anywhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.backend import CellModels
from harness.core.child_process import die_with_parent
from harness.core.errors import ModelPreparationError, ServerError
from harness.core.host import free_loopback_port
from harness.core.schema import CellSpec
from harness.kinds.serving import ServingParams


def start_local_server(model_dir: Path, device: str, properties: dict[str, Any], log_path: Path,
                       embedding_dir: Path | None = None, timeout_s: float = 180,
                       scheduler: dict[str, Any] | None = None) -> tuple[subprocess.Popen, str]:
    """`harness serve` in a child process on a free loopback port; returns it and its /v3 base URL.
    `scheduler` holds SchedulerConfig fields of its pipeline."""
    import httpx

    port = free_loopback_port()
    cmd = [sys.executable, "-m", "harness", "serve", str(model_dir), "--port", str(port), "--device", device,
           "--properties", json.dumps(properties)]
    if embedding_dir is not None:
        cmd += ["--embeddings", str(embedding_dir)]
    if scheduler:
        cmd += ["--scheduler", json.dumps(scheduler)]
    log = open(log_path, "w")  # noqa: SIM115 - handed to the child, closed by the OS with it
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"harness serve exited with {proc.returncode}: "
                              f"{log_path.read_text(errors='replace')[-400:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/v3"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise ServerError(f"harness serve did not become ready in {timeout_s:g} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def auth_headers(p: ServingParams) -> dict[str, str] | None:
    """The bearer token from the environment variable the suite names (never written anywhere)."""
    if not p.api_key_env:
        return None
    key = os.environ.get(str(p.api_key_env))
    if not key:
        raise ModelPreparationError(f"environment variable {p.api_key_env} (api_key_env) is not set")
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Endpoint:
    """A reached server: its /v3 base URL, the headers its requests carry, and its process when the cell
    started it."""

    base_url: str
    headers: dict[str, str] | None
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)


def reach_server(cell: CellSpec, models: CellModels) -> Endpoint:
    """Start harness serve for `local` on the cell's model, device and properties, or reach the suite's URL; a
    missing API key fails the cell before any server starts."""
    p = ServingParams.of(cell)
    headers = auth_headers(p)
    if cell.remote:  # enable_prefix_caching with a remote server is refused when the suite is read
        return Endpoint(str(cell.server).rstrip("/"), headers)
    scheduler = {} if p.enable_prefix_caching is None else {"enable_prefix_caching": p.enable_prefix_caching}
    proc, base_url = start_local_server(models.target, cell.device, dict(cell.properties),
                                        models.workdir / "server.log", scheduler=scheduler)
    return Endpoint(base_url, headers, proc)
