#!/usr/bin/env bash
# Services the test suite starts itself: a PostgreSQL server (Debian's package) for the history
# database test. Installs it only when `initdb` is missing. Never fails the caller: without the
# server the PostgreSQL test is skipped with its reason, so this prints why and exits 0.
set -uo pipefail

find_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if find_initdb; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-services: no initdb and no apt-get; the PostgreSQL test will be skipped" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "install-test-services: no initdb, and installing postgresql needs root; the PostgreSQL test will be skipped" >&2
    exit 0
  fi
fi
echo "install-test-services: installing Debian's postgresql for the history database test" >&2
export DEBIAN_FRONTEND=noninteractive
if ! log="$("${sudo[@]}" apt-get update -qq 2>&1 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends postgresql 2>&1)"; then
  echo "install-test-services: installing postgresql failed; the PostgreSQL test will be skipped:" >&2
  printf '%s\n' "$log" | tail -n 5 >&2
  exit 0
fi
# Debian's package creates and starts a cluster of its own; the tests start their own server on a
# free loopback port, so the system one is not needed.
exit 0
