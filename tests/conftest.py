from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from harness.analyze.history import HistoryStore
from harness.core.host import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
# the harness ships no fault injection: its workers (and a test cluster's) import tests/faults.py by this name
os.environ.setdefault("HARNESS_FAULTS_MODULE", "tests.faults")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def model_cache_dir() -> Path:
    """Models built for tests live in the repo's ignored .cache/test (reused across test runs)."""
    path = Path(os.environ.get("HARNESS_TEST_CACHE", ROOT / ".cache" / "test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return model_cache_dir()


def run_cli(*args: str, cache: Path | None = None, timeout: float = 900, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` the way a user would (with `env` added to the environment); returns the
    completed process."""
    extra = env or {}
    env = dict(os.environ)
    env.pop("HARNESS_SET", None)  # a test's suite is what it says, whatever the shell running the tests set
    env.update(extra)
    if cache is not None:
        env["HARNESS_CACHE_DIR"] = str(cache)
    elif "HARNESS_CACHE_DIR" not in extra:  # never the home cache: a fresh CI machine would build tiny there again
        env["HARNESS_CACHE_DIR"] = str(model_cache_dir())
    # keep test runs out of the user's history database
    env.setdefault("HARNESS_HISTORY_URL", f"sqlite:///{ROOT / '.cache' / 'test-history.sqlite'}")
    env.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd or ROOT)


def run_suite(suite: dict[str, Any], folder: Path, cache: Path, timeout: float = 900
              ) -> tuple[subprocess.CompletedProcess, Path]:
    """`harness run` on `suite` written to folder/suite.yaml; the process and its run directory (folder/run)."""
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    return run_cli("run", str(folder / "suite.yaml"), "--out", str(folder / "run"), cache=cache,
                   timeout=timeout), folder / "run"


# ---------------------------------------------------------------- PostgreSQL server for the tests


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    # Debian keeps the server binaries off PATH, one directory per major version.
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    return Path(dirs[-1]) if dirs and (Path(dirs[-1]) / "pg_ctl").exists() else None


def _free_port() -> int:
    return free_loopback_port()


def _unavailable(reason: str) -> None:
    # A warning as well as the skip: the warnings summary is shown without -rs.
    warnings.warn(f"PostgreSQL server not available: {reason}", stacklevel=2)
    pytest.skip(f"PostgreSQL server not available: {reason}")


def cache_holding_tiny(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, prefix: str) -> Path:
    """A fresh model cache for what a test module builds, holding only the trained tiny model (built once in the
    shared test cache: ~150 s)."""
    from harness.models.synthetic import build_synthetic

    path = tmp_path_factory.mktemp(prefix)
    built = build_synthetic("tiny", model_cache)
    shutil.copytree(built, path / "synthetic" / built.name)
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (free port, socket in tmp); yields an admin URL."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found (scripts/install-test-services.sh installs Debian's postgresql)")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        # The server refuses to run as root.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server as")
        runuser = shutil.which("runuser")
        as_user = [runuser, "-u", "postgres", "--"] if runuser else []
    # Not under pytest's tmp_path: its parents are private to root, and the server user must reach it.
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if owner is not None:
        for p in (root, sock):
            os.chown(p, owner.pw_uid, owner.pw_gid)

    def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        if owner is not None and not as_user:
            return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)],
                                  capture_output=True, text=True, timeout=timeout, cwd=root)
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=timeout, cwd=root)

    def last_lines(text: str) -> str:
        return "; ".join(text.strip().splitlines()[-2:])

    started = False
    try:
        init = run(str(bindir / "initdb"), "-D", str(data), "-U", "harness", "--auth=trust", "-E", "UTF8",
                   "--no-locale", "--no-sync")
        if init.returncode != 0:
            _unavailable(f"initdb failed: {last_lines(init.stderr or init.stdout)}")
        for _attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            # -F: no fsync, the data is thrown away; -k: socket in tmp, not /var/run/postgresql.
            opts = f"-h 127.0.0.1 -p {port} -k {sock} -F"
            start = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", opts, "start")
            if start.returncode == 0:
                break
        else:
            reason = last_lines(log.read_text(errors="replace")) if log.exists() else last_lines(start.stderr)
            _unavailable(f"pg_ctl start failed: {reason}")
        started = True
        yield f"postgresql+psycopg://harness@127.0.0.1:{port}/postgres"
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"{type(e).__name__}: {e}")
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh database per test on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # The plain postgresql:// form, as a user would write it: the store picks psycopg 3.
    yield postgres_server.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    url = f"sqlite:///{tmp_path / 'history.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = HistoryStore(url)
    yield s
    s.close()


@contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a daemon thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = free_loopback_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
