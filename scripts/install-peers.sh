#!/usr/bin/env bash
# The [peers] extra: llama.cpp through llama-cpp-python, the runtime the harness measures OpenVINO against
# (runtime: llama.cpp). The registry has it as a source package only; this builds it once into a wheel in the harness
# cache and installs that. The build is portable: every x86 CPU variant of ggml, the best chosen at load time
# (GGML_CPU_ALL_VARIANTS), because the machine's CPU model can change under a cached wheel, and a wheel built for
# the build host's own instructions (pip's default) would crash on another. About 15-25 minutes on 2 cores, once.
# A machine where it cannot build says so in one line and the rest of the harness runs (llama.cpp cells then fail
# in one line, their tests are skipped).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HARNESS_VENV:-$root/.venv}"
version="$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$root/pyproject.toml" | head -1)"
wheels="${HARNESS_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/ov-genai-harness/wheels}/llama-cpp-python-$version-portable"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '$version')" 2>/dev/null \
   && [ -f "$venv/.peers-portable" ]; then
  exit 0
fi
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "install-peers: building llama-cpp-python $version (portable, once; 15-25 minutes on 2 cores)" >&2
  mkdir -p "$wheels.tmp"
  if ! CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAMA_CURL=OFF" \
       CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "${pip[@]}" wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
       -w "$wheels.tmp" "llama-cpp-python==$version" > "$wheels.log" 2>&1; then
    echo "install-peers: llama-cpp-python $version did not build here (log: $wheels.log); runtime llama.cpp is unavailable" >&2
    rm -rf "$wheels.tmp"
    exit 0
  fi
  rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
fi
# the wheel itself over any other build of the same version (pip would keep an installed one), then what it needs
if "${pip[@]}" install --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl >&2 \
   && "${pip[@]}" install --find-links "$wheels" --only-binary llama-cpp-python "llama-cpp-python==$version" >&2; then
  touch "$venv/.peers-portable"
else
  echo "install-peers: the built llama-cpp-python wheel did not install (in $wheels); runtime llama.cpp is unavailable" >&2
fi
exit 0
