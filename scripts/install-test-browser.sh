#!/usr/bin/env bash
# Browser for the HTML report test (tests/unit/reports/test_html.py): Debian's chromium, run headless. Installs it
# only when /usr/bin/chromium is missing. Never fails the caller: without a browser that test is
# skipped with its reason. fonts-dejavu-core: a font the headless browser can always render the report's text with.
set -uo pipefail
chromium="${HARNESS_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-debian-packages.sh" install-test-browser "HTML browser test" \
  chromium fonts-dejavu-core
