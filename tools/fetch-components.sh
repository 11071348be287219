#!/usr/bin/env bash
# Fetch the real components (Debian bookworm packages) into a git-ignored cache and unpack them with
# `dpkg -x`. Nothing is installed as a system service and no package script runs.
# Idempotent: a second call with a complete cache does nothing.
#
# Layout:  .cache/components/debs/*.deb      the downloaded packages
#          .cache/components/root/usr/...    their unpacked contents
#          .cache/components/env             shell variables naming each binary (sourced by make/tests)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/components"
stamp="$cache/.complete"

# package -> upstream version these edge machines run (Debian bookworm). The Debian revision may move
# with security updates; the upstream version may not.
packages=(
  "prometheus 2.42.0"
  "prometheus-node-exporter 1.5.0"
  "victoria-metrics 1.79.5"
  "i2c-tools 4.3"
  "libi2c0 4.3"
)

if [[ -f "$stamp" ]]; then
  exit 0
fi

mkdir -p "$cache/debs" "$cache/root"
# apt's download sandbox user cannot write into root-owned folders; the folder only ever holds .debs.
chmod 0777 "$cache/debs"

echo "fetch-components: apt-get update" >&2
apt-get update -qq >&2

cd "$cache/debs"
for entry in "${packages[@]}"; do
  read -r name upstream <<<"$entry"
  rm -f "${name}"_*.deb
  echo "fetch-components: apt-get download $name" >&2
  apt-get download -qq "$name" >&2
  deb=$(ls "${name}"_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  # Strip an epoch and the Debian revision/suffixes: 2.42.0+ds-5+deb12u1 -> 2.42.0
  base=${version#*:}
  base=${base%%[+~-]*}
  if [[ "$base" != "$upstream" ]]; then
    echo "fetch-components: $name is $version, expected upstream $upstream" >&2
    exit 1
  fi
  dpkg -x "$deb" "$cache/root"
done

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
root="$cache/root"
cat >"$cache/env" <<ENV
# Written by tools/fetch-components.sh: where the unpacked components live.
EDGE_COMPONENTS_ROOT=$root
PROMETHEUS_BIN=$root/usr/bin/prometheus
PROMTOOL_BIN=$root/usr/bin/promtool
NODE_EXPORTER_BIN=$root/usr/bin/prometheus-node-exporter
VMAGENT_BIN=$root/usr/bin/vmagent
I2C_TOOLS_DIR=$root/usr/sbin
I2C_LIBRARY_PATH=$root/usr/lib/$multiarch
ENV

for bin in prometheus promtool prometheus-node-exporter vmagent; do
  [[ -x "$root/usr/bin/$bin" ]] || { echo "fetch-components: $bin missing after unpack" >&2; exit 1; }
done
touch "$stamp"
echo "fetch-components: ready in $cache" >&2
