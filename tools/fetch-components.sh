#!/usr/bin/env bash
# Fetch the real components (Debian packages pinned in deploy/components.versions) into a git-ignored
# cache and unpack them with `dpkg -x`. Nothing is installed as a system service, no package script
# runs, and the machine's own apt sources and state are never touched: each suite gets a private
# sources list, state and cache under the component cache.
# Idempotent: a second call with a complete cache for the same versions file does nothing.
#
# Layout:  .cache/components/apt/SET/SUITE/      private apt lists and state for one suite, per invocation
#                                                (SET: components or peers)
#          .cache/components/debs/*.deb          the downloaded packages
#          .cache/components/current/usr/...     the "current" set unpacked (what users install today)
#          .cache/components/compat/usr/...      the "compat" set unpacked (bookworm's old releases)
#          .cache/components/env                 shell variables naming each binary (sourced by make/tests)
#          .cache/components/peers/usr/...       `fetch-components.sh peers` only: the agents bench/peers
#          .cache/components/peers.env           compares the collector with, and where they are
#
# usage: fetch-components.sh          the current and compat sets (`make components`)
#        fetch-components.sh peers    the peers set alone (`make bench-peers`, `make test`: its smoke run)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
versions="$top/deploy/components.versions"
cache="$top/.cache/components"
only=${1:-}
if [[ -n "$only" && "$only" != peers ]]; then
  echo "usage: fetch-components.sh [peers]" >&2
  exit 2
fi

# The two invocations may run at once (`make test` sets up in parallel), and so may a checkout sharing the cache.
# Each invocation has apt state of its own: two apt-get with one private state (apt's own lock is off for it)
# were seen to fail, one reading the package cache while the other rewrote it. The packages the two fetch
# differ. One invocation of each kind at a time, under a lock that flock(1) holds (-o: the programs run under
# it do not inherit it).
set_name=${only:-components}
mkdir -p "$cache/apt/$set_name"
if [[ -z "${FETCH_COMPONENTS_LOCKED:-}" ]]; then
  FETCH_COMPONENTS_LOCKED=1 exec flock -o "$cache/.lock-$set_name" bash "$0" "$@"
fi

# Each invocation's stamp covers its own lines only, so pinning a peer never unpacks the shared sets again
# (the cache is shared by worktrees whose suites may be running) and `make components` never fetches a peer.
# The on-demand sets' comment lines start with `# peers`.
if [[ "$only" == peers ]]; then
  stamp="$cache/.complete-peers"
  lines() { awk '$1 == "peers"' "$versions"; }
else
  stamp="$cache/.complete"
  lines() { grep -Ev '^(peers[[:space:]]|# peers)' "$versions"; }
fi
want=$(lines | sha256sum | cut -d' ' -f1)

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  touch "$stamp"  # up to date for make too, after an edit of another set's lines
  exit 0
fi
if [[ "$only" == peers ]]; then
  rm -rf "$cache/peers" "$stamp"
else
  rm -rf "$cache/current" "$cache/compat" "$stamp"
fi
mkdir -p "$cache/debs"
# apt's download sandbox user cannot write into root-owned folders; the folder only ever holds .debs.
chmod 0777 "$cache/debs"

apt_for() {  # SUITE -> the apt options of its private configuration
  local dir="$cache/apt/$set_name/$1"
  printf '%s\n' -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/none" \
    -o "Dir::State=$dir/state" -o "Dir::State::Status=$dir/state/status" -o "Dir::Cache=$dir/cache" \
    -o "Debug::NoLocking=1"
}

prepare_suite() {  # SUITE: a sources list naming only that suite, and fresh package lists
  local suite=$1 dir="$cache/apt/$set_name/$1"
  mkdir -p "$dir/none" "$dir/state/lists/partial" "$dir/cache/archives/partial"
  touch "$dir/state/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    >"$dir/sources.list"
  echo "fetch-components: apt-get update ($suite, private state)" >&2
  mapfile -t opts < <(apt_for "$suite")
  apt-get "${opts[@]}" update -qq >&2
}

deb_of() {  # PACKAGE VERSION -> the start of its .deb's name in $cache/debs (the epoch is not in the name)
  echo "${1}_${2/*:/}_"
}

download() {  # SUITE PACKAGE=VERSION...: those exact versions into $cache/debs, in one apt-get
  local suite=$1
  shift
  mapfile -t opts < <(apt_for "$suite")
  echo "fetch-components: apt-get download $* ($suite)" >&2
  if ! (cd "$cache/debs" && apt-get "${opts[@]}" download -qq "$@" >&2); then
    echo "fetch-components: a version above is no longer in $suite; update deploy/components.versions" \
      "(apt-cache policy PACKAGE shows what $suite has now)" >&2
    exit 1
  fi
}

# The packages not downloaded yet, per suite: one apt-get update and one apt-get download for each suite (each
# apt-get reads the suite's lists first, which costs more than a small package's download).
entries=()
declare -A wanted=()
while read -r set suite name version; do
  [[ -z "$set" || "$set" == \#* ]] && continue
  entries+=("$set $name $version")
  ls "$cache/debs/$(deb_of "$name" "$version")"*.deb >/dev/null 2>&1 || wanted[$suite]+=" $name=$version"
done < <(lines | grep -Ev '^[[:space:]]*(#|$)')
for suite in "${!wanted[@]}"; do
  prepare_suite "$suite"
  read -ra packages <<<"${wanted[$suite]}"
  download "$suite" "${packages[@]}"
done
for entry in "${entries[@]}"; do
  read -r set name version <<<"$entry"
  dpkg -x "$(ls "$cache/debs/$(deb_of "$name" "$version")"*.deb | head -1)" "$cache/$set"
done

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
if [[ "$only" == peers ]]; then
  peers=$(cd "$cache/peers" && pwd -P)  # the real path: a worktree that shares the cache through a symlink may go
  cat >"$cache/peers.env" <<ENV
# Written by tools/fetch-components.sh peers from deploy/components.versions: the agents bench/peers runs.
COLLECTD_BIN=$peers/usr/sbin/collectd
COLLECTD_PLUGIN_DIR=$peers/usr/lib/collectd
COLLECTD_TYPES_DB=$peers/usr/share/collectd/types.db
PEERS_LIBRARY_PATH=$peers/usr/lib/$multiarch
SCRIPT_EXPORTER_BIN=$peers/usr/bin/prometheus-script-exporter
ENV
  for bin in "$peers/usr/sbin/collectd" "$peers/usr/bin/prometheus-script-exporter"; do
    LD_LIBRARY_PATH="$peers/usr/lib/$multiarch" "$bin" -h >/dev/null 2>&1 \
      || LD_LIBRARY_PATH="$peers/usr/lib/$multiarch" "$bin" --help >/dev/null 2>&1 \
      || { echo "fetch-components: $bin missing or does not run here" >&2; exit 1; }
  done
  echo "$want" >"$stamp"
  echo "fetch-components: peers ready in $peers" >&2
  exit 0
fi
cur="$cache/current"
old="$cache/compat"
cat >"$cache/env" <<ENV
# Written by tools/fetch-components.sh from deploy/components.versions: where the unpacked components live.
EDGE_COMPONENTS_ROOT=$cur
PROMETHEUS_BIN=$cur/usr/bin/prometheus
PROMTOOL_BIN=$cur/usr/bin/promtool
NODE_EXPORTER_BIN=$cur/usr/bin/prometheus-node-exporter
VMAGENT_BIN=$cur/usr/bin/vmagent
VMAUTH_BIN=$cur/usr/bin/vmauth
VICTORIA_METRICS_BIN=$cur/usr/bin/victoria-metrics
ALERTMANAGER_BIN=$cur/usr/bin/prometheus-alertmanager
AMTOOL_BIN=$cur/usr/bin/amtool
ALERTMANAGER_WEB_DIR=$cur/usr/share/prometheus/alertmanager
I2C_TOOLS_DIR=$cur/usr/sbin
I2C_LIBRARY_PATH=$cur/usr/lib/$multiarch
COMPAT_PROMETHEUS_BIN=$old/usr/bin/prometheus
COMPAT_PROMTOOL_BIN=$old/usr/bin/promtool
COMPAT_VMAGENT_BIN=$old/usr/bin/vmagent
ENV

# Every binary named above must exist and start on this machine (sid builds on a bookworm libc).
while IFS='=' read -r key path; do
  [[ "$key" == *_BIN ]] || continue
  [[ -x "$path" ]] || { echo "fetch-components: $key: $path missing after unpack" >&2; exit 1; }
  "$path" --help >/dev/null 2>&1 || "$path" -help >/dev/null 2>&1 \
    || { echo "fetch-components: $key: $path does not run here" >&2; exit 1; }
done <"$cache/env"
echo "$want" >"$stamp"
echo "fetch-components: ready in $cache" >&2
