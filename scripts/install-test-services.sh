#!/usr/bin/env bash
# Services the test suite starts itself: a PostgreSQL server (Debian's package) for the history
# database test. Installs it only when `initdb` is missing. Never fails the caller: without the
# server the PostgreSQL test is skipped with its reason. (Debian's package creates and starts a cluster of its
# own; the tests start their own server on a free loopback port, so the system one is not needed.)
set -uo pipefail
command -v initdb >/dev/null 2>&1 && exit 0
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && exit 0
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-debian-packages.sh" install-test-services \
  "PostgreSQL history database test" postgresql
