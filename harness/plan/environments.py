"""Python environments a cell's worker processes run in: the stack version as an axis.

An environment is either a set of pinned packages (`openvino-genai==2026.3.1`), built once into the model
cache with uv (pip when uv is missing) and reused, content-addressed by the package set the resolver chose,
or the path of an existing interpreter. The harness's own code reaches a worker through PYTHONPATH on a
folder that holds only the `harness` package, so nothing else of the harness's own stack leaks in.

Models are prepared once by the harness's own stack and every environment reads the same IR weights.
Tokenizer IRs are the exception: a newer openvino-tokenizers writes operations an older runtime cannot
run (2026.4's tokenizer crashes openvino-genai 2026.3 and 2025.x while loading), so an environment whose
openvino-tokenizers differs gets a view of the model folder: links to every file, with the tokenizer and
detokenizer converted again by the environment's own openvino-tokenizers from the folder's tokenizer.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from harness.core.digest import digest
from harness.core.errors import HarnessInputError
from harness.core.input_files import (
    MAX_METADATA_BYTES,
    MAX_PROBE_OUTPUT_BYTES,
    NotJSON,
    decode,
    load_json,
    parse_json,
)
from harness.core.schema import EnvironmentRecord
from harness.models import cache

# Bump when what goes into an environment changes (requirements, layout), so old builds are not reused.
ENV_FORMAT = 1
# importing openvino_genai in a cold environment reads hundreds of MB; a hung interpreter must still end
PROBE_TIMEOUT_S = 300.0
MANIFEST = "harness-env.json"
# What the worker, the reference loop and `harness serve` import besides the stack, pinned to the versions
# the harness itself runs (numpy left to the resolver: older openvino releases cap it).
WORKER_PACKAGES = ("pydantic", "pydantic-core", "pyyaml", "typer", "rich", "psutil", "httpx", "fastapi",
                   "uvicorn", "prometheus-client", "scipy")
UNPINNED = ("numpy", "openvino-tokenizers[transformers]")  # the latter converts tokenizers in the environment
TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
                   "openvino_detokenizer.bin")
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!_-]+"
                  r"(\s*,\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!_-]+)*$")
PROBE = "import json, harness.execute.worker as w; print(json.dumps(w.runtime_versions()))"


class EnvironmentSpec(BaseModel):
    """One environment of a suite: pinned packages, or an existing interpreter."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    packages: list[str] = Field(default_factory=list, description="pinned requirements, e.g. openvino-genai==2026.3.1")
    python: str | None = Field(None, description="path of an existing interpreter that has openvino-genai")

    @model_validator(mode="after")
    def _one_kind(self) -> EnvironmentSpec:
        if bool(self.packages) == bool(self.python):
            raise ValueError(f"environment {self.name!r} needs either packages or python (exactly one)")
        for p in self.packages:
            if not _PIN.match(p.strip()):
                raise ValueError(f"environment {self.name!r}: {p!r} is not a requirement such as "
                                 "openvino-genai==2026.3.1")
        return self


class PreparedEnvironment(EnvironmentRecord):
    """A usable environment: its interpreter and what it really imports (recorded in the results)."""

    _source_dir: Path = PrivateAttr()  # harness_source_dir() of the cache it was prepared with

    def record(self) -> EnvironmentRecord:
        return EnvironmentRecord.model_validate(self.model_dump())

    def worker_env(self) -> dict[str, str]:
        """Process environment for a child running harness code in this environment."""
        return _child_env(self._source_dir)


def _child_env(source_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONPATH"] = str(source_dir)
    return env


def _prepared(source_dir: Path, **fields) -> PreparedEnvironment:
    env = PreparedEnvironment(**fields)
    env._source_dir = source_dir
    return env


def parse_env_option(text: str) -> EnvironmentSpec:
    """`--env NAME=SPEC`: SPEC is an interpreter path, or requirements separated by spaces or ';'."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise HarnessInputError("command line", "--env", text, "expected NAME=SPEC (pinned packages or a python path)")
    spec = spec.strip()
    looks_like_path = "/" in spec and not any(op in spec for op in ("==", ">=", "<=", "~="))
    try:
        if looks_like_path:
            return EnvironmentSpec(name=name, python=spec)
        return EnvironmentSpec(name=name, packages=[p for p in re.split(r"[;\s]+", spec) if p])
    except ValidationError as e:
        msg = e.errors()[0]["msg"]
        raise HarnessInputError("command line", "--env", text, msg.removeprefix("Value error, ")) from None


def harness_source_dir(cache_dir: Path) -> Path:
    """A folder in the cache holding only a link to the `harness` package (what a worker's PYTHONPATH names)."""
    pkg = Path(__file__).resolve().parents[1]
    shim = Path(cache_dir) / "envs" / "src" / digest(str(pkg), 12)
    link = shim / "harness"
    if not link.exists():
        shim.mkdir(parents=True, exist_ok=True)
        tmp = shim / f".harness-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(pkg, target_is_directory=True)
        os.replace(tmp, link)
    return shim


def _uv() -> list[str] | None:
    exe = Path(sys.executable).parent / "uv"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("uv")
    return [found] if found else None


def _index_args() -> list[str]:
    """pip's index settings for uv, which does not read pip.conf (the same registry either way)."""
    args: list[str] = []
    for env_var, flag in (("PIP_INDEX_URL", "--index-url"), ("PIP_EXTRA_INDEX_URL", "--extra-index-url"),
                          ("PIP_FIND_LINKS", "--find-links")):
        for value in os.environ.get(env_var, "").split():
            if value.startswith(("http://", "https://")) or Path(value.removeprefix("file://")).exists():
                args += [flag, value]
    return args


def package_name(requirement: str) -> str:
    """'openvino-genai' from 'openvino-genai==2026.3.1', 'openvino-tokenizers[transformers]>=2026' and the like."""
    return re.split(r"[\[<>=!~ ]", requirement.strip(), maxsplit=1)[0].lower()


def requirements(spec: EnvironmentSpec) -> list[str]:
    """What an environment installs: the asked packages, then the worker's own needs."""
    asked = {package_name(p) for p in spec.packages}
    out = list(spec.packages)
    for name in WORKER_PACKAGES:
        if name in asked:
            continue
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    companions = _release_companions(spec.packages, asked)
    out += [p for p in UNPINNED if p.split("[")[0] not in asked and p.split("[")[0] not in companions]
    return out + list(companions.values())


def _release_companions(packages: list[str], asked: set[str]) -> dict[str, str]:
    """An exact openvino-genai pin's own openvino and openvino-tokenizers release, unless asked otherwise.
    Each openvino-genai wheel links one libopenvino release (libopenvino.so.2640 for 2026.4.0), but its
    requirements allow the whole minor series, so the resolver would pair openvino-genai 2026.4.0 with
    openvino 2026.4.1 and the environment would not import (seen bisecting 2026.3.1 -> 2026.4.1)."""
    pin = next((p.split("==", 1)[1].strip() for p in packages
                if package_name(p) == "openvino-genai" and "==" in p
                and "," not in p and "*" not in p), None)
    if pin is None or release(pin) is None:
        return {}
    out = {}
    if "openvino" not in asked:
        out["openvino"] = f"openvino=={release(pin)}"
    if "openvino-tokenizers" not in asked:
        out["openvino-tokenizers"] = f"openvino-tokenizers[transformers]=={release(pin)}.*"
    return out


def _failure(spec: EnvironmentSpec, stderr: str) -> HarnessInputError:
    """One line naming the environment and, when the resolver says which, the package."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    named = next((ln for ln in lines if any(p.split("=")[0].split("[")[0] in ln for p in spec.packages)), None)
    why = named or next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "failed")
    return HarnessInputError(f"environment {spec.name}", "packages", " ".join(spec.packages),
                             f"cannot be installed: {why.removeprefix('error: ').removeprefix('ERROR: ')[:300]}")


def _run(cmd: list[str], spec: EnvironmentSpec, timeout: float, **kw) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise HarnessInputError(f"environment {spec.name}", "packages", " ".join(spec.packages),
                                f"installing took longer than {timeout:g} s") from None
    if proc.returncode != 0:
        raise _failure(spec, proc.stderr + proc.stdout)
    return proc.stdout


def _resolve(spec: EnvironmentSpec, reqs: list[str], python: str) -> list[str]:
    uv = _uv()
    if uv is None:  # pip cannot resolve without installing: the requested set is the address
        return sorted(reqs)
    out = _run([*uv, "pip", "compile", "-", "--python", python, "--no-header", "--no-annotate", "--quiet",
                *_index_args()], spec, 600, input="\n".join(reqs) + "\n")
    return sorted(ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("#"))


def probe(python: str, name: str, source_dir: Path, log: Callable[[str], None] | None = None,
          timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str | None]:
    """The stack versions an interpreter imports (worker.runtime_versions), the harness's worker importable."""
    if log:
        log(f"environment {name}: asking {python} which stack it imports (up to {timeout_s:g} s) ...")
    try:
        proc = subprocess.run([python, "-c", PROBE], capture_output=True, timeout=timeout_s,
                              env=_child_env(source_dir))
    except subprocess.TimeoutExpired:
        raise HarnessInputError(f"environment {name}", "python", python,
                                f"did not answer within {timeout_s:g} s (importing openvino_genai and the worker)") from None
    except OSError as e:
        raise HarnessInputError(f"environment {name}", "python", python, f"cannot run: {e}") from None
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise HarnessInputError(f"environment {name}", "python", python,
                                f"cannot import openvino_genai and the harness worker: {last[:300]}")
    if len(proc.stdout) > MAX_PROBE_OUTPUT_BYTES:
        raise HarnessInputError(f"environment {name}", "python", python, f"its version probe printed "
                                f"{len(proc.stdout)} bytes, not the one line of versions it prints")
    lines = decode(proc.stdout, f"environment {name}", "its version probe's output").strip().splitlines()
    try:
        found = parse_json(lines[-1], f"environment {name}", "its version probe's output", field="python",
                           value=python) if lines else None
    except NotJSON:
        found = None
    if not isinstance(found, dict) or not all(isinstance(v, str | None) for v in found.values()):
        shown = lines[-1][:120] if lines else "nothing"
        raise HarnessInputError(f"environment {name}", "python", python,
                                f"its version probe printed {shown!r}, not the JSON object of versions it prints")
    return found


def prepare_environment(spec: EnvironmentSpec, cache_dir: Path,
                        log: Callable[[str], None] | None = None) -> PreparedEnvironment:
    """Build (or find) an environment; raise HarnessInputError with one line when it cannot be had."""
    log = log or (lambda _m: None)
    source_dir = harness_source_dir(cache_dir)
    if spec.python:
        python = spec.python
        if not Path(python).is_file():
            raise HarnessInputError(f"environment {spec.name}", "python", python, "no such interpreter")
        return _prepared(source_dir, name=spec.name, python=python, versions=probe(python, spec.name, source_dir, log))
    base = sys.executable
    reqs = requirements(spec)
    log(f"environment {spec.name}: resolving {' '.join(spec.packages)} ...")
    resolved = _resolve(spec, reqs, base)
    env_digest = digest({"format": ENV_FORMAT, "python": sys.version.split()[0], "packages": resolved})
    entry = Path(cache_dir) / "envs" / env_digest
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process building environment {env_digest}")):
        manifest = _manifest(entry)
        if manifest is not None:
            log(f"environment {spec.name}: reusing {entry}")
            return _prepared(source_dir, name=spec.name, python=str(entry / "bin" / "python"),
                             requested=spec.packages, resolved=resolved, digest=env_digest, versions=manifest["versions"],
                             build_s=manifest.get("build_s"))
        shutil.rmtree(entry, ignore_errors=True)  # a build that never finished is never reused
        t0 = time.monotonic()
        log(f"environment {spec.name}: installing {len(resolved)} packages into {entry} ...")
        try:
            _install(spec, resolved, base, entry)
            versions = probe(str(entry / "bin" / "python"), spec.name, source_dir, log)
        except BaseException:
            shutil.rmtree(entry, ignore_errors=True)
            raise
        build_s = time.monotonic() - t0
        (entry / MANIFEST).write_text(json.dumps({"format": ENV_FORMAT, "requested": spec.packages,
                                                  "resolved": resolved, "versions": versions, "build_s": build_s},
                                                 indent=1))
        log(f"environment {spec.name}: openvino-genai {versions.get('openvino-genai')} ready in {build_s:.0f} s")
    return _prepared(source_dir, name=spec.name, python=str(entry / "bin" / "python"), requested=spec.packages,
                     resolved=resolved, digest=env_digest, versions=versions, build_s=build_s)


def _manifest(entry: Path) -> dict | None:
    try:  # a damaged manifest is a build that never finished: built again
        manifest = load_json(entry / MANIFEST, "environment manifest", MAX_METADATA_BYTES)
    except HarnessInputError:
        return None
    if (manifest.get("format") != ENV_FORMAT or not isinstance(manifest.get("versions"), dict)
            or not (entry / "bin" / "python").exists()):
        return None
    return manifest


def _install(spec: EnvironmentSpec, resolved: list[str], base: str, entry: Path) -> None:
    uv = _uv()
    if uv is not None:
        _run([*uv, "venv", "--quiet", "--python", base, str(entry)], spec, 300)
        _run([*uv, "pip", "install", "--quiet", "--python", str(entry / "bin" / "python"), "--no-deps",
              *_index_args(), *resolved], spec, 1800)
        return
    _run([base, "-m", "venv", str(entry)], spec, 300)
    _run([str(entry / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          *resolved], spec, 1800)


def model_view(env: PreparedEnvironment, model_dir: Path, cache_dir: Path,
               log: Callable[[str], None] | None = None) -> Path:
    """The model folder as `env` should read it: the folder itself when the environment's
    openvino-tokenizers is the harness's own release, else a view (links to every file) whose tokenizer
    and detokenizer the environment's own openvino-tokenizers converted from the folder's tokenizer files."""
    model_dir = Path(model_dir)
    theirs = env.versions.get("openvino-tokenizers")
    if theirs is None or release(theirs) == release(_own_tokenizers_version()):
        return model_dir
    if not any((model_dir / f).exists() for f in TOKENIZER_FILES):
        return model_dir  # no tokenizer IR to replace (for instance a diffusion or speech layout)
    view = (Path(cache_dir) / "envs" / "views" / (env.digest or digest(env.python, 12))
            / f"{model_dir.name}-{digest(str(model_dir.resolve()), 8)}")
    done = view / ".harness-view"
    with cache.entry_lock(view):
        if done.exists():
            return view
        shutil.rmtree(view, ignore_errors=True)
        view.mkdir(parents=True)
        for f in model_dir.iterdir():
            if f.name not in TOKENIZER_FILES:
                (view / f.name).symlink_to(f.resolve())
        if log:
            log(f"converting the tokenizer of {model_dir.name} with openvino-tokenizers {theirs} ({env.name})")
        # the converter's module moved between releases; its console-script entry point did not
        code = ("import sys\nfrom importlib.metadata import entry_points\n"
                "convert = next(iter(entry_points(group='console_scripts', name='convert_tokenizer'))).load()\n"
                "sys.argv = ['convert_tokenizer', sys.argv[1], '--with-detokenizer', '-o', sys.argv[2]]\n"
                "convert()")
        proc = subprocess.run([env.python, "-c", code, str(model_dir), str(view)], capture_output=True, text=True,
                              timeout=600, env=env.worker_env())
        if proc.returncode != 0 or not (view / "openvino_tokenizer.xml").exists():
            shutil.rmtree(view, ignore_errors=True)
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"environment {env.name} cannot convert the tokenizer of {model_dir.name}: {last[:300]}")
        done.write_text(theirs)
    return view


def release(version: str | None) -> str | None:
    """'2026.3.1' from '2026.3.1.0', '2026.3.1-19476-abc' and the like."""
    return ".".join(re.findall(r"\d+", version)[:3]) if version else None


def _own_tokenizers_version() -> str | None:
    try:
        return metadata.version("openvino-tokenizers")
    except metadata.PackageNotFoundError:
        return None


def with_environments(suite, options: list[str]):
    """The suite with the environments of repeated --env NAME=SPEC options (a name given twice is refused)."""
    specs = [parse_env_option(o) for o in options]
    names = [s.name for s in specs]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise HarnessInputError("command line", "--env", dup, "the same environment name is given twice")
    return suite.model_copy(update={"environments": specs})


def prepare_environments(specs: list[EnvironmentSpec], cache_dir: Path,
                         log: Callable[[str], None] | None = None) -> dict[str, PreparedEnvironment]:
    """Build (or find) each environment before any cell runs; a failure is one line naming it."""
    return {s.name: prepare_environment(s, cache_dir, log=log) for s in specs}
