#!/usr/bin/env bash
# Installs what building Aligner needs, if missing (Debian; apt-get as root).
#   scripts/deps.sh          build dependencies: libsnappy, libprotobuf-c, libcurl (-dev), pkg-config
#   scripts/deps.sh --test   also what the tests run: Debian's prometheus (the end-to-end sender)
set -euo pipefail
need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
have() { command -v pkg-config >/dev/null && pkg-config --exists "$1"; }
have snappy || need+=(libsnappy-dev)
have libprotobuf-c || need+=(libprotobuf-c-dev)
have libcurl || need+=(libcurl4-openssl-dev)
have sqlite3 || need+=(libsqlite3-dev)
if [ "${1:-}" = "--test" ]; then
  { command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# Packaged services (prometheus) must not start: tests run their own on 127.0.0.1.
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
