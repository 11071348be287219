#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine, on loopback and free ports.
#
#   collector (bundled default, simulated I2C sensors) -> textfile -> node_exporter -> vmagent (disk
#   queue) -> central Prometheus (remote-write receiver, out-of-order window) -> Alertmanager -> a
#   webhook receiver that appends every notification to $run/webhook.log
#
# Secure as shipped (docs/security.md): tools/make-certs.sh makes a CA, the centre's certificate and the
# node's token in $run/pki; vmagent writes over TLS with its token to vmauth, whose gate sets
# the node label from the token and writes to Prometheus, which serves only TLS with basic auth.
# EDGE_DEMO_INSECURE=1: plain HTTP straight to Prometheus, no authentication (a warning says so).
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
export ALERTMANAGER_BIN ALERTMANAGER_WEB_DIR # for tools/run-alertmanager.sh
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
      line=${line//"\$($name)"/"${!name}"} # quoted: bash 5.2 would put the match in place of a `&`
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
am_port=$(free_port)
hook_port=$(free_port)
prom_url="http://127.0.0.1:$prom_port"
am_url="http://127.0.0.1:$am_port"
insecure=${EDGE_DEMO_INSECURE:-0}
pki="$run/pki"
ingest_port=$(free_port)
ingest_admin_port=$(free_port)
relabel_port=$(free_port)
if [[ $insecure == 1 ]]; then
  say "WARNING: EDGE_DEMO_INSECURE=1: no TLS, no authentication; anyone on this machine can write to"
  say "WARNING: and read from the centre. Never run the centre like this where others can reach it."
else
  prom_url="https://127.0.0.1:$prom_port"
  am_url="https://127.0.0.1:$am_port"
fi
CLUSTER=${CLUSTER:-demo}
# vmauth routes the node's token to the gate on $relabel_port (its limits: $pki/gate-limits.conf).
bash tools/make-certs.sh --out "$pki" --node "$node" --backend "http://127.0.0.1:$relabel_port" \
  --cluster "$CLUSTER" 2>/dev/null

cp -r deploy/prometheus "$run/prometheus-config"
sed -i "s/127\.0\.0\.1:9090/127.0.0.1:$prom_port/; s/127\.0\.0\.1:8426/127.0.0.1:$ingest_admin_port/;
  s/central-alertmanager:9093/127.0.0.1:$am_port/;
  s/127\.0\.0\.1:8430/127.0.0.1:$relabel_port/; s|/etc/edge-metrics-central/|$pki/|" \
  "$run/prometheus-config/prometheus.yml"
if [[ $insecure == 1 ]]; then # the self-scrape and Alertmanager over plain HTTP, no vmauth or gate
  sed -i 's/^    scheme: https$/    scheme: http/; s/^    - scheme: https$/    - scheme: http/' \
    "$run/prometheus-config/prometheus.yml"
fi
# Alertmanager as deployed, its webhook pointed at the demo's receiver instead of yours.
# The dead man's switch too: the demo never leaves this machine.
sed "s|url: http://alert-receiver.monitoring.svc:8080/alerts|url: http://127.0.0.1:$hook_port/alerts|;
  s|url: https://hc-ping.com/REPLACE-WITH-YOUR-CHECK-UUID|url: http://127.0.0.1:$hook_port/heartbeat|" \
  deploy/alertmanager/alertmanager.yml >"$run/alertmanager.yml"
# The target names the node as its vmagent labels what it sends (node and cluster): EdgeNodeSilent matches
# the two on both.
CLUSTER=${CLUSTER:-demo}
# By name: the centre's pull keeps apart from the node's self-scrape of 127.0.0.1 by `instance`, as in production
# where the centre reaches the node at the node's address.
printf '[{"targets": ["localhost:%s"], "labels": {"node": "%s", "cluster": "%s"}}]\n' "$vm_port" "$node" "$CLUSTER" \
  >"$run/prometheus-config/targets/vmagent-$node.json"
sed "s/127\.0\.0\.1:9100/127.0.0.1:$ne_port/; s/127\.0\.0\.1:8429/127.0.0.1:$vm_port/" deploy/vmagent/scrape.yml \
  >"$run/vmagent-scrape.yml"

declare -A ne_over=(
  [--collector.textfile.directory]="$run/textfile"
  [--web.listen-address]="127.0.0.1:$ne_port"
)
declare -A vm_over=(
  [-promscrape.config]="$run/vmagent-scrape.yml"
  [-remoteWrite.tmpDataPath]="$run/vmagent-remotewrite-data"
  [-httpListenAddr]="127.0.0.1:$vm_port"
  [-remoteWrite.tlsCAFile]="$pki/nodes/$node/ca.crt"
  [-remoteWrite.bearerTokenFile]="$pki/nodes/$node/token"
  [-reloadAuthKey]="file://$pki/nodes/$node/admin-key"
  [-flagsAuthKey]="file://$pki/nodes/$node/admin-key"
  [-pprofAuthKey]="file://$pki/nodes/$node/admin-key"
)
declare -A va_over=(
  [-auth.config]="$pki/auth.yml"
  [-httpListenAddr]="127.0.0.1:$ingest_port"
  [-httpInternalListenAddr]="127.0.0.1:$ingest_admin_port"
  [-tlsCertFile]="$pki/central.crt"
  [-tlsKeyFile]="$pki/central.key"
)
declare -A gate_over=(
  [--listen]="127.0.0.1:$relabel_port"
  [--store-url]="$prom_url/api/v1/write"
  [--store-ca-file]="$pki/ca.crt"
  [--store-password-file]="$pki/ingest.password"
  [--limits]="$pki/gate-limits.conf"
)
NODE_NAME=$node
REMOTE_WRITE_URL="https://127.0.0.1:$ingest_port/api/v1/write"
[[ $insecure == 1 ]] && REMOTE_WRITE_URL="$prom_url/api/v1/write"
read_flags deploy/vmauth/vmauth.flags va_flags va_over
read_flags deploy/vmauth/gate.flags gate_flags gate_over
read_flags deploy/node-exporter/node-exporter.flags ne_flags ne_over
read_flags deploy/vmagent/vmagent.flags vm_flags vm_over

# --- start ------------------------------------------------------------------------------------------
web_config=(--web.config.file="$pki/web.yml")
[[ $insecure == 1 ]] && web_config=()
say "central Prometheus on $prom_url"
start prometheus "$PROMETHEUS_BIN" --config.file="$run/prometheus-config/prometheus.yml" \
  --storage.tsdb.path="$run/prometheus-data" --web.listen-address="127.0.0.1:$prom_port" \
  --web.enable-remote-write-receiver --web.user-assets="$top/tools/demo-ui" "${web_config[@]}"
if [[ $insecure != 1 ]]; then
  say "vmauth (TLS, one token per node) on 127.0.0.1:$ingest_port, the gate on 127.0.0.1:$relabel_port"
  start gate "$venv_bin/edge-metrics" gate "${gate_flags[@]}"
  start vmauth "$VMAUTH_BIN" "${va_flags[@]}"
fi
say "node_exporter on 127.0.0.1:$ne_port, textfile directory $run/textfile"
start node-exporter "$NODE_EXPORTER_BIN" "${ne_flags[@]}"
say "vmagent on 127.0.0.1:$vm_port, disk queue $run/vmagent-remotewrite-data"
start vmagent "$VMAGENT_BIN" "${vm_flags[@]}"
say "Alertmanager on $am_url, notifications to $run/webhook.log"
cat >"$run/webhook.py" <<'PY'
# The demo's stand-in for your receiver: one line per alert of each notification Alertmanager posts.
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(sys.argv[2], "a") as log:
            for alert in body["alerts"]:
                log.write(f"{alert['status']} {alert['labels'].get('alertname')} {alert['labels'].get('node', '')} "
                          f"{alert['annotations'].get('summary', '')}\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
start webhook "$venv_bin/python" "$run/webhook.py" "$hook_port" "$run/webhook.log"
am_web_config=(--web.config.file="$pki/alertmanager-web.yml") # TLS + basic auth, as deployed
[[ $insecure == 1 ]] && am_web_config=()
start alertmanager tools/run-alertmanager.sh --config.file="$run/alertmanager.yml" \
  --storage.path="$run/alertmanager-data" --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
  "${am_web_config[@]}"

collector=("$venv_bin/edge-metrics" run --node-name "$node" --output "$run/textfile/custom_metrics.prom")
# Push mode, as the DaemonSet runs it: readings go to vmagent with their own time (docs/time.md); the textfile
# carries the collector's own metrics. EDGE_DEMO_TEXTFILE=1 shows the textfile-only path instead.
if [[ -z ${EDGE_DEMO_TEXTFILE:-} ]]; then
  collector+=(--push-url "http://127.0.0.1:$vm_port/api/v1/import/prometheus" --spool-dir "$run/spool")
  if ! "$venv_bin/python" -c 'import sys; from edge_metrics.clock import adjtimex; sys.exit(0 if adjtimex()[0] else 1)'
  then
    # A machine without NTP (a container, a VM synced by its hypervisor) would hold every reading.
    say "this machine's clock is not synchronised (adjtimex): the demo's collector trusts it (--clock-check none)"
    collector+=(--clock-check none)
  fi
  say "push mode: readings to vmagent's /api/v1/import/prometheus, spool $run/spool"
fi
if [[ -f $sim_lib && -f $model ]]; then
  say "collector for node $node on the bundled default, under the I2C simulator ($model)"
  start collector "$venv_bin/edge-metrics" simulate --model "$model" -- "${collector[@]}"
else
  say "no simulator ($sim_lib or $model missing: run \`make sim\`); the collector runs on real I2C"
  say "buses, so on this machine its scripts fail and only edge_collector_* metrics flow"
  start collector "${collector[@]}"
fi

# HTTP through the virtualenv's Python: a fresh machine may have no curl. As the centre's admin user,
# trusting only the demo's CA.
centre_get() { # centre_get PATH: the body, or a failure
  "$venv_bin/python" - "$prom_url" "$1" "$pki" <<'PY'
import base64, pathlib, ssl, sys, urllib.request
url, path, pki = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
password = (pki / "admin.password").read_text().strip()
auth = base64.b64encode(f"admin:{password}".encode()).decode()
request = urllib.request.Request(url + path, headers={"Authorization": f"Basic {auth}"})
context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
sys.stdout.write(urllib.request.urlopen(request, timeout=5, context=context).read().decode())
PY
}
http_ok() { centre_get /-/ready; }
has_data() { # has_data QUERY: the centre returns at least one series for QUERY
  local encoded
  encoded=$("$venv_bin/python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")
  centre_get "/api/v1/query?query=$encoded" | "$venv_bin/python" -c \
    'import json, sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
wait_for 60 "Prometheus" http_ok
am_ok() { # Alertmanager answers /-/ready to its operator user, trusting only the demo's CA
  "$venv_bin/python" - "$am_url/-/ready" "$pki" <<'PY'
import base64, pathlib, ssl, sys, urllib.request
url, pki = sys.argv[1], pathlib.Path(sys.argv[2])
password = (pki / "alertmanager-operator.password").read_text().strip()
auth = base64.b64encode(f"operator:{password}".encode()).decode()
context = ssl.create_default_context(cafile=str(pki / "ca.crt")) if url.startswith("https") else None
urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"}), timeout=5,
                       context=context)
PY
}
wait_for 60 "Alertmanager" am_ok
say "waiting for the first readings at the centre (scrapes every 15 s, as in production)"
query='edge_temperature'
if ! wait_for 90 "edge_temperature at the centre" has_data "$query"; then
  query='edge_collector_info'
  wait_for 60 "edge_collector_info at the centre" has_data "$query"
fi

encoded=$("$venv_bin/python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$query")
curl_auth="--cacert $pki/ca.crt -u admin:\$(cat $pki/admin.password) "
# The dashboards' renderer logs in as curl does: the demo's CA and the admin password it made.
render_auth=" --ca-file $pki/ca.crt --password-file $pki/admin.password"
credentials="user admin, password in $pki/admin.password, CA $pki/ca.crt (docs/security.md)"
amtool_auth="--http.config.file=$pki/amtool-http.yml"
if [[ $insecure == 1 ]]; then
  curl_auth=""
  amtool_auth=""
  render_auth=""
  credentials="none (EDGE_DEMO_INSECURE=1)"
fi
cat <<EOF

  Central Prometheus:  $prom_url/user/
  A ready query:       $prom_url/user/?query=$encoded
  Alerts:              $prom_url/user/?view=alerts
  API:                 $prom_url/api/v1/query?query=$encoded
  From a shell:        curl -s $curl_auth'$prom_url/api/v1/query' --data-urlencode 'query=$query{node="$node"}'
  Credentials:         $credentials
  (The pages are the demo's own, tools/demo-ui: Debian's Prometheus package has no web UI.)
  Dashboards as PNG:   .venv/bin/python deploy/grafana/render.py --prometheus $prom_url$render_auth --node $node --out $run/dashboards
  Logs and data:       $run
  Alertmanager:        $am_url   (Debian ships no web UI: $AMTOOL_BIN alert --alertmanager.url=$am_url $amtool_auth)
  Notifications:       $run/webhook.log

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
