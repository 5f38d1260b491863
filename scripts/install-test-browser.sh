#!/usr/bin/env bash
# Browser for the HTML report test (tests/unit/reports/test_html.py): Debian's chromium, run headless. Installs it
# only when /usr/bin/chromium is missing. Never fails the caller: without a browser that test is
# skipped with its reason, so this prints why and exits 0.
set -uo pipefail

chromium="${HARNESS_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-browser: no $chromium and no apt-get; the HTML browser test will be skipped" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "install-test-browser: no $chromium, and installing chromium needs root; the HTML browser test will be skipped" >&2
    exit 0
  fi
fi
echo "install-test-browser: installing Debian's chromium for the HTML report test" >&2
# fonts-dejavu-core: a font the headless browser can always render the report's text with.
if ! log="$("${sudo[@]}" apt-get update -qq 2>&1 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core 2>&1)"; then
  echo "install-test-browser: installing chromium failed; the HTML browser test will be skipped:" >&2
  printf '%s\n' "$log" | tail -n 5 >&2
  exit 0
fi
exit 0
