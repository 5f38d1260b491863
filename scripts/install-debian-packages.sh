#!/usr/bin/env bash
# Install Debian packages a test needs, as root or through passwordless sudo. Never fails the caller: where they
# cannot be installed, it says why (the test is then skipped with its reason) and exits 0.
# Usage: install-debian-packages.sh WHO WHAT PACKAGE...   (WHO names the caller, WHAT the test that needs them)
set -uo pipefail
who="$1" what="$2"
shift 2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: no apt-get to install $*; the $what will be skipped" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "$who: installing $* needs root; the $what will be skipped" >&2
    exit 0
  fi
fi
echo "$who: installing Debian's $* for the $what" >&2
if ! log="$("${sudo[@]}" apt-get update -qq 2>&1 && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$@" 2>&1)"; then
  echo "$who: installing $* failed; the $what will be skipped:" >&2
  printf '%s\n' "$log" | tail -n 5 >&2
fi
exit 0
