#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine, on loopback and free ports.
#
#   collector (bundled default, simulated I2C sensors) -> textfile -> node_exporter -> vmagent (disk
#   queue) -> central Prometheus (remote-write receiver, out-of-order window)
#
# Every program uses the configuration in deploy/ as it is; only ports and paths are substituted, as
# in tests/e2e/stack.py. Ctrl-C (or SIGTERM) stops everything: each program runs in its own process
# group, and the trap kills every group, then checks that none is left.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

node=${NODE_NAME:-bupt-a}
run=${EDGE_DEMO_DIR:-$top/.run/demo} # logs, data, rendered configs
venv_bin="$top/.venv/bin"
sim_lib="$top/build/libi2csim.so"
model="$top/scripts/models/space_server.yaml"

say() { printf 'demo: %s\n' "$*" >&2; }

bash tools/fetch-components.sh
# shellcheck disable=SC1091
source .cache/components/env
[[ -x "$venv_bin/edge-metrics" ]] || { say "run \`make venv\` first (make demo does)"; exit 1; }

free_port() {
  "$venv_bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- processes: one process group each, all killed on exit ----------------------------------------
groups=()
start() { # start NAME COMMAND...: in its own session (= process group), output to $run/NAME.log
  local name=$1
  shift
  setsid "$@" >"$run/$name.log" 2>&1 </dev/null &
  groups+=("$!")
}

stop_all() {
  trap - EXIT INT TERM
  ((${#groups[@]})) || exit "${1:-0}"
  say "stopping ${#groups[@]} programs"
  local pgid deadline
  for pgid in "${groups[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  deadline=$((SECONDS + 10))
  for pgid in "${groups[@]}"; do
    while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for pgid in "${groups[@]}"; do
    if kill -0 -- "-$pgid" 2>/dev/null; then say "process group $pgid survived"; exit 1; fi
  done
  say "stopped; nothing left running"
  exit "${1:-0}"
}
trap 'stop_all 0' INT TERM
trap 'stop_all $?' EXIT

wait_for() { # wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { say "timed out waiting for $what (logs in $run)"; return 1; }
    sleep 0.2
  done
}

# Reads a deploy/*.flags file: drops comments, expands $(NAME) from the environment like Kubernetes,
# and replaces the value of each flag named in the `overrides` associative array.
read_flags() {
  local file=$1 line name
  local -n _out=$2 _over=$3
  _out=()
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* ]] && continue
    while [[ $line =~ \$\(([A-Za-z_][A-Za-z0-9_]*)\) ]]; do
      name=${BASH_REMATCH[1]}
      [[ -v $name ]] || { say "$file: \$($name) has no value"; return 1; }
      line=${line//"\$($name)"/${!name}}
    done
    name=${line%%=*}
    [[ -v "_over[$name]" ]] && line="$name=${_over[$name]}"
    _out+=("$line")
  done <"$file"
}

# --- configuration: deploy/ with ports and paths substituted ---------------------------------------
rm -rf "$run"
mkdir -p "$run/textfile"
prom_port=$(free_port)
ne_port=$(free_port)
vm_port=$(free_port)
prom_url="http://127.0.0.1:$prom_port"

cp -r deploy/prometheus "$run/prometheus-config"
sed -i "s/127\.0\.0\.1:9090/127.0.0.1:$prom_port/" "$run/prometheus-config/prometheus.yml"
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"node": "%s"}}]\n' "$vm_port" "$node" \
  >"$run/prometheus-config/targets/vmagent-$node.json"
sed "s/127\.0\.0\.1:9100/127.0.0.1:$ne_port/" deploy/vmagent/scrape.yml >"$run/vmagent-scrape.yml"

declare -A ne_over=(
  [--collector.textfile.directory]="$run/textfile"
  [--web.listen-address]="127.0.0.1:$ne_port"
)
declare -A vm_over=(
  [-promscrape.config]="$run/vmagent-scrape.yml"
  [-remoteWrite.tmpDataPath]="$run/vmagent-remotewrite-data"
  [-httpListenAddr]="127.0.0.1:$vm_port"
)
NODE_NAME=$node
REMOTE_WRITE_URL="$prom_url/api/v1/write"
SITE=${SITE:-demo}
read_flags deploy/node-exporter/node-exporter.flags ne_flags ne_over
read_flags deploy/vmagent/vmagent.flags vm_flags vm_over

# --- start ------------------------------------------------------------------------------------------
say "central Prometheus on $prom_url"
start prometheus "$PROMETHEUS_BIN" --config.file="$run/prometheus-config/prometheus.yml" \
  --storage.tsdb.path="$run/prometheus-data" --web.listen-address="127.0.0.1:$prom_port" \
  --web.enable-remote-write-receiver
say "node_exporter on 127.0.0.1:$ne_port, textfile directory $run/textfile"
start node-exporter "$NODE_EXPORTER_BIN" "${ne_flags[@]}"
say "vmagent on 127.0.0.1:$vm_port, disk queue $run/vmagent-remotewrite-data"
start vmagent "$VMAGENT_BIN" "${vm_flags[@]}"

collector=("$venv_bin/edge-metrics" run --node-name "$node" --output "$run/textfile/custom_metrics.prom")
if [[ -f $sim_lib && -f $model ]]; then
  say "collector for node $node on the bundled default, under the I2C simulator ($model)"
  start collector "$venv_bin/edge-metrics" simulate --model "$model" -- "${collector[@]}"
else
  say "no simulator ($sim_lib or $model missing: run \`make sim\`); the collector runs on real I2C"
  say "buses, so on this machine its scripts fail and only edge_collector_* metrics flow"
  start collector "${collector[@]}"
fi

# HTTP through the virtualenv's Python: a fresh machine may have no curl.
http_ok() { "$venv_bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$1"; }
has_data() { # has_data QUERY: the centre returns at least one series for QUERY
  "$venv_bin/python" - "$prom_url" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
url = f"{sys.argv[1]}/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
sys.exit(0 if json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"] else 1)
PY
}
wait_for 60 "Prometheus" http_ok "$prom_url/-/ready"
say "waiting for the first readings at the centre (scrapes every 15 s, as in production)"
query='edge_temperature'
if ! wait_for 90 "edge_temperature at the centre" has_data "$query"; then
  query='edge_collector_info'
  wait_for 60 "edge_collector_info at the centre" has_data "$query"
fi

encoded=$("$venv_bin/python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$query")
cat <<EOF

  Central Prometheus:  $prom_url
  A ready query:       $prom_url/graph?g0.expr=$encoded&g0.tab=0&g0.range_input=15m
  From a shell:        curl -s '$prom_url/api/v1/query' --data-urlencode 'query=$query{node="$node"}'
  Alerts:              $prom_url/alerts
  Logs and data:       $run

  Press Ctrl-C to stop everything.

EOF

# Stay in the foreground; a program that dies ends the demo (and the trap cleans up the rest).
while true; do
  for pgid in "${groups[@]}"; do
    if ! kill -0 "$pgid" 2>/dev/null; then
      say "a program exited unexpectedly; see the logs in $run"
      exit 1
    fi
  done
  sleep 1
done
