"""The harness as a user installs it: a wheel (not this checkout, not editable), run from another folder, has its
shipped suites and runs the default one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, model_cache_dir

# the default suite on the tiny built-in model, one short call per cell (its real model needs the registry)
ON_TINY = ("models.*.source=synthetic:tiny", "models.*.draft=synthetic:tiny-draft", "warmup=0", "iterations=1",
           "load_twice=false", "validation_prompts=0", "prompts.input_tokens=[8]", "generation.max_new_tokens=4",
           "precisions=[fp16]")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a folder of its own (its dependencies: this venv's)."""
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(out / "dist")],
                   check=True, capture_output=True, cwd=out)
    wheel = next((out / "dist").glob("ov_genai_harness-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(out / "site"), str(wheel)], check=True,
                   capture_output=True)
    return out / "site"


def _harness(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # the installed copy ahead of this checkout's editable install (whose finder comes after sys.path)
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_CACHE_DIR": str(model_cache_dir()), "COLUMNS": "200",
           "HARNESS_HISTORY_URL": f"sqlite:///{cwd / 'history.sqlite'}"}
    env.pop("HARNESS_SET", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


def test_the_installed_wheel_has_its_suites_and_runs_the_default_one(installed, tmp_path):
    found = _harness(installed, tmp_path, "--help")
    assert found.returncode == 0
    where = subprocess.run([sys.executable, "-c", "import harness, harness.plan.suite as s; print(harness.__file__); "
                            "print(s.SUITES_DIR)"], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(installed)}, check=True).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in where), where
    assert {p.name for p in Path(where[1]).glob("*.yaml")} == {p.name for p in (ROOT / "suites").glob("*.yaml")}
    listed = _harness(installed, tmp_path, "run", "--list")
    assert listed.returncode == 0 and "smollm2-135m/fp16/CPU/greedy/in128-out64" in listed.stdout, listed.stderr
    sets = [a for item in ON_TINY for a in ("--set", item)]
    run = _harness(installed, tmp_path, "run", *sets)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "cells ok" in run.stdout and (tmp_path / "results").is_dir()
