#!/usr/bin/env bash
# Install those of the named Debian packages that this machine lacks (apt-get, as root): what make's
# strace, browser, i2c-tools, image-tools and image-test-tools targets need from the system.
#
# One caller at a time: `make test` sets up its prerequisites in parallel, other checkouts may be setting up
# theirs, and apt holds one lock that a second apt-get fails on rather than waits for. The callers queue on
# a lock of their own, machine-wide like apt's, and each looks again at what is missing once it holds it,
# so a package the caller before it installed is not installed twice.
#
# usage: host-packages.sh PACKAGE...     (HOST_PACKAGES_LOCK: another lock file, for the tests)
set -euo pipefail

missing() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q 'ok installed' || echo "$package"
  done
}

[[ -n "$(missing "$@")" ]] || exit 0
# Again under the lock, which flock(1) holds for us (-o: a service a package's scripts start does not inherit it).
if [[ -z "${HOST_PACKAGES_LOCKED:-}" ]]; then
  HOST_PACKAGES_LOCKED=1 exec flock -o "${HOST_PACKAGES_LOCK:-/tmp/edge-metrics-host-packages.lock}" bash "$0" "$@"
fi
mapfile -t need < <(missing "$@")
((${#need[@]})) || exit 0
echo "make: installing Debian's ${need[*]} (apt-get, as root)"
apt-get update -qq
apt-get install -y --no-install-recommends "${need[@]}"
