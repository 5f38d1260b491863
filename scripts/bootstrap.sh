#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# Why a script: torch must come from the local CPU wheel (torch==2.13.0) before
# optimum-intel resolves it, and PyPI's torchvision (pulled by optimum-intel) fails to
# import beside that CPU torch and breaks `transformers`, so it is removed afterwards.
# Re-running is cheap: a stamp keyed by pyproject.toml skips the install when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HARNESS_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.harness-installed"
# the files' contents only: a checkout elsewhere (the README tests' linked copy) shares the stamp
want="$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" "$root/scripts/constraints.txt" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing the harness into $venv (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
constraints=(-c "$root/scripts/constraints.txt")
# uv (a dependency of the harness anyway) installs the same set in parallel, about 6x faster than pip here
# (15 s against ~90 s, its download cache cold); it reads no pip.conf, so pip's find-links (where the CPU torch
# wheel lies) are handed over. Where uv cannot do it, pip does it as before.
uv_args=()
for link in ${PIP_FIND_LINKS:-} $("$venv/bin/python" -m pip config get global.find-links 2>/dev/null || true); do
  uv_args+=(--find-links "$link")
done
[ -n "${PIP_INDEX_URL:-}" ] && uv_args+=(--index-url "$PIP_INDEX_URL")
if "${pip[@]}" install "uv>=0.5" >&2 \
   && "$venv/bin/uv" pip install --python "$venv/bin/python" -q "${uv_args[@]}" "${constraints[@]}" \
        "torch==2.13.0" -e "$root[export,test,cluster]" >&2; then
  :
else
  echo "bootstrap: uv could not install the set; installing with pip" >&2
  "${pip[@]}" install --upgrade pip >&2
  "${pip[@]}" install "${constraints[@]}" "torch==2.13.0" >&2
  "${pip[@]}" install "${constraints[@]}" -e "$root[export,test,cluster]" >&2
fi
"${pip[@]}" uninstall -y torchvision >&2 2>/dev/null || true
"$venv/bin/python" -c "import transformers, optimum.intel, openvino_genai, ray" >&2
echo "$want" > "$stamp"
