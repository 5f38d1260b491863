"""A Ray cluster on this machine's loopback: a head that runs no cell and worker nodes with labels, each a
`ray start --block` in its own process group (so one node can be killed alone). For the tests, the benchmarks
and trying `harness run --cluster` before a lab exists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.core.host import free_loopback_port

READY = "This command will now block forever"


def ray_env(cache: Path | None = None) -> dict[str, str]:
    """The environment the nodes and the submitter share: no Ray token auth (Ray 2.60 otherwise wants
    ~/.ray/auth_token), no usage reporting, and the nodes' model cache."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    if cache is not None:
        env["HARNESS_CACHE_DIR"] = str(cache)
    return env


class LocalCluster:
    def __init__(self, cache: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # Ray's socket paths must stay short
        self.port = free_loopback_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = env or ray_env(cache)
        self.procs: dict[str, subprocess.Popen] = {}
        self.ray = str(Path(sys.executable).parent / "ray")

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log_path = self.temp / f"{name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen([self.ray, "start", "--block", "--disable-usage-stats", "--temp-dir",
                                     str(self.temp), *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        self.procs[name] = proc
        deadline = time.monotonic() + 90
        while READY not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill(name)
                raise RuntimeError(f"ray start for node {name} failed: {log_path.read_text()[-600:]}")
            time.sleep(0.3)

    def start_head(self) -> None:
        # node deaths noticed in ~3 s rather than Ray's default of tens of seconds
        config = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
        self._start("head", ["--head", "--port", str(self.port), "--num-cpus", "0", "--include-dashboard", "false",
                             "--system-config", json.dumps(config)], self.env)

    def start_worker(self, name: str, labels: dict[str, str], cpus: int = 1,
                     extra_env: dict[str, str] | None = None) -> None:
        self._start(name, ["--address", self.address, "--num-cpus", str(cpus),
                           "--labels", ",".join(f"{k}={v}" for k, v in labels.items())],
                    {**self.env, **(extra_env or {})})

    def kill(self, name: str) -> None:
        """The node dies at once, as a machine that loses power: SIGKILL to its whole process group."""
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        procs = [self.procs.pop(n) for n in [n for n in self.procs if n != "head"] + ["head"] if n in self.procs]
        for proc in procs:  # `ray start --block` stops its node's processes on SIGTERM
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
