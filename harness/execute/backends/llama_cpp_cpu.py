"""Which of the portable llama.cpp build's CPU variants this machine can run, found by trying them.

scripts/install-peers.sh builds every x86 variant of ggml's CPU backend (libggml-cpu-haswell.so, -icelake, -zen4,
-sapphirerapids, ...), so a wheel built on one CPU runs on another. ggml would load the variant with the best score
for what CPUID reports; on a VM CPUID may report what the guest cannot use (here: the sapphirerapids variant, AMX,
dies with SIGILL on the first matrix product). So each variant ggml scores above zero is tried, best first, in a
child process that loads it and runs a few tokens of the cell's own model; the first that lives is used, and the
choice is kept in the cache per CPU (model name and flags) and llama-cpp-python version."""

from __future__ import annotations

import ctypes
import hashlib
import json
import subprocess
import sys
from pathlib import Path

PROBE_TIMEOUT_S = 120
# a child: print each variant's ggml score as JSON (a score call only reads CPUID)
_SCORES = """
import ctypes, json, sys
import llama_cpp  # loads libggml-base, which the variants link without a path to it
out = {}
for path in sys.argv[1:]:
    try:
        lib = ctypes.CDLL(path)
        lib.ggml_backend_score.restype = ctypes.c_int
        out[path] = lib.ggml_backend_score()
    except Exception:
        out[path] = 0
print(json.dumps(out))
"""
# a child: load one variant, run four tokens of the model; exit 0 only when that worked
_PROBE = """
import sys
from harness.execute.backends.llama_cpp_cpu import load_variant
import llama_cpp
load_variant(sys.argv[1])
llm = llama_cpp.Llama(model_path=sys.argv[2], n_ctx=32, n_batch=32, n_threads=1, verbose=True)
llm.eval(llm.tokenize(b"The quick brown fox", add_bos=True)[:4])
print("ok")
"""


def _package_dirs() -> tuple[Path, Path]:
    import llama_cpp

    pkg = Path(llama_cpp.__file__).parent
    return pkg / "lib", pkg.parent / "bin"  # where the wheel puts libggml, and its CPU variants


def variants() -> list[Path]:
    """The portable build's CPU variant libraries (none for a build for one CPU)."""
    return sorted(_package_dirs()[1].glob("libggml-cpu-*.so"))


def load_variant(path: str) -> None:
    """Register one CPU variant with the libggml llama.cpp itself links (libggml.so.0 in the package's lib folder:
    the wheel also holds a copy named libggml.so, a separate library to the dynamic loader)."""
    ggml = ctypes.CDLL(str(_package_dirs()[0] / "libggml.so.0"))
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    if not ggml.ggml_backend_load(path.encode()):
        raise RuntimeError(f"ggml could not load the CPU backend {path}")


def _cpu_key() -> str:
    from importlib.metadata import version

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    lines = {line.split(":")[0].strip(): line for line in info.splitlines() if ":" in line}
    ident = [lines.get("model name", ""), lines.get("flags", ""), version("llama_cpp_python")]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def choose_variant(gguf: Path, cache: Path | None) -> Path | None:
    """The variant to load (None: not a portable build, llama.cpp loads its own backend); RuntimeError when none
    runs here."""
    found = variants()
    if not found:
        return None
    record = cache / "peers" / f"llama-cpp-variant-{_cpu_key()}.json" if cache is not None else None
    if record is not None and record.is_file():
        chosen = Path(json.loads(record.read_text())["variant"])
        if chosen.is_file():
            return chosen
    scores = subprocess.run([sys.executable, "-c", _SCORES, *map(str, found)], capture_output=True, text=True,
                            timeout=PROBE_TIMEOUT_S)
    ranked = json.loads(scores.stdout) if scores.returncode == 0 and scores.stdout.strip() else {}
    order = sorted((p for p in found if ranked.get(str(p), 1) > 0), key=lambda p: -ranked.get(str(p), 0))
    tried: list[str] = []
    for path in order:
        probe = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(gguf)], capture_output=True, text=True,
                               timeout=PROBE_TIMEOUT_S)
        if probe.returncode > 0:  # an error, not an instruction this CPU lacks: the file, not the variant
            raise RuntimeError(f"llama.cpp cannot run {gguf.name}: {_reason(probe.stderr)}")
        if probe.returncode == 0 and "ok" in probe.stdout:
            if record is not None:
                record.parent.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps({"variant": str(path), "failed": tried}))
            return path
        tried.append(f"{path.stem.removeprefix('libggml-cpu-')} (exit {probe.returncode})")
    raise RuntimeError(f"no CPU variant of the llama.cpp build runs here; tried {', '.join(tried) or 'none'}")


def _reason(stderr: str) -> str:
    """llama.cpp's own line about what went wrong (it logs it; the Python error only says the load failed)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    found = next((line for line in lines if "error loading model" in line or "error:" in line.lower()), None)
    return (found or (lines[-1] if lines else "no output"))[:300]


def ensure_cpu_backend(gguf: Path, cache: Path | None) -> str:
    """Load the chosen CPU variant into this process unless a backend is loaded already; its name ("native" for a
    build for one CPU, which loads its own)."""
    chosen = choose_variant(gguf, cache)
    if chosen is None:
        return "native"
    ggml = ctypes.CDLL(str(_package_dirs()[0] / "libggml.so.0"))
    ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    if ggml.ggml_backend_dev_count() == 0:
        load_variant(str(chosen))
    return chosen.stem.removeprefix("libggml-cpu-")
