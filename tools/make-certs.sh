#!/usr/bin/env bash
# Credentials for the secure path (docs/security.md): a CA, the centre's TLS certificate, one bearer
# token per edge node, the passwords of the centre's own users, and the configs that use them.
#
#   tools/make-certs.sh [--out DIR] [--node NAME]... [--san NAME]... [--backend URL] [--backend-auth]
#                       [--direct] [--cluster NAME] [--days N] [--expired]
#
#   --out DIR       where everything goes (default .run/pki, git-ignored); an existing CA there is kept,
#                   so running it again adds nodes and renews certificates without breaking the others
#   --node NAME     an edge node that may write (repeat; default bupt-a)
#   --san NAME      an extra DNS name or IP address for the centre's certificate (repeat)
#   --backend URL   where vmauth forwards an authenticated node's write (default: the gate beside it,
#                   http://127.0.0.1:8430); vmauth sends it to URL/node/<node>/<cluster>/api/v1/write, so
#                   the node and cluster labels come from the credential (docs/security.md, "The gate")
#   --direct        the backend is the store itself, no gate (tests, benchmarks): vmauth sends
#                   `?extra_label=node=<node>&extra_label=cluster=<cluster>` (VictoriaMetrics sets the labels,
#                   Prometheus ignores them) instead of the path, for import and remote write
#   --backend-auth  vmauth sends the `ingest` user's basic auth to the backend (a backend that is the
#                   central Prometheus itself, with web.yml); implies --direct
#   --cluster NAME  the `cluster` label the centre sets on everything the --node nodes of this run write
#                   (kept in nodes/<node>/cluster; default `default`, the DaemonSet's CLUSTER)
#   --days N        validity of the certificates (default 365)
#   --expired       also write central-expired.{crt,key}: the centre's certificate, expired yesterday
#
# Output (file modes 0600 for secrets, 0644 for certificates):
#   ca.crt ca.key                      the CA (keep ca.key off the cluster)
#   central.crt central.key            the centre's server certificate (vmauth and Prometheus)
#   nodes/<node>/token                 the node's bearer token (vmagent -remoteWrite.bearerTokenFile)
#   nodes/<node>/ca.crt                the CA the node verifies the centre with
#   nodes/<node>/admin-key             key for the node vmagent's /-/reload, /flags, pprof
#   auth.yml                           vmauth's -auth.config: one user per node (holds the tokens)
#   web.yml                            Prometheus --web.config.file: TLS + bcrypt basic auth
#   gate-limits.conf                   the gate's per-node limits (the ConfigMap central-gate-limits):
#                                      a line per node, new nodes appended, the operator's edits kept
#   <user>.password                    plain passwords of the centre's users: admin (UI/API),
#                                      ingest (remote write), prometheus (its self-scrape)
#   alertmanager.crt alertmanager.key  Alertmanager's own server certificate (its pod holds no centre key)
#   alertmanager-web.yml               Alertmanager --web.config.file: TLS + bcrypt basic auth
#   alertmanager-<user>.password       Alertmanager's users: prometheus (the central Prometheus sends
#                                      alerts and scrapes it), operator (amtool, silences)
#   amtool-http.yml                    amtool --http.config.file for operators (the operator user, ca.crt)
# Needs openssl and python3 (bcrypt through the crypt module, or htpasswd when that is missing).
set -euo pipefail

out=.run/pki
nodes=()
sans=()
backend=http://127.0.0.1:8430
backend_auth=0
direct=0
cluster=
days=365
expired=0
usage() { sed -n '5,22p' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --node) nodes+=("${2:?--node needs a name}"); shift 2 ;;
    --san) sans+=("${2:?--san needs a name}"); shift 2 ;;
    --backend) backend=${2:?--backend needs a URL}; shift 2 ;;
    --backend-auth) backend_auth=1; direct=1; shift ;;
    --direct) direct=1; shift ;;
    --cluster) cluster=${2:?--cluster needs a name}; shift 2 ;;
    --days) days=${2:?--days needs a number}; shift 2 ;;
    --expired) expired=1; shift ;;
    -h | --help) usage ;;
    *) echo "make-certs: unknown argument $1" >&2; usage ;;
  esac
done
((${#nodes[@]})) || nodes=(bupt-a)
for node in "${nodes[@]}"; do
  # The name ends up in a YAML file, a URL and a label value: keep it to Kubernetes node-name characters.
  [[ $node =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || { echo "make-certs: bad node name '$node'" >&2; exit 2; }
done
# The same characters for a cluster: it becomes a label value in a URL too.
[[ -z $cluster || $cluster =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || { echo "make-certs: bad cluster name '$cluster'" >&2; exit 2; }
[[ $backend == *\?* ]] && { echo "make-certs: --backend takes a URL without a query ('$backend')" >&2; exit 2; }

umask 077
mkdir -p "$out"/nodes
cd "$out"

secret() { openssl rand -hex 32; } # 256 random bits, printable for flag files and headers

bcrypt() { # bcrypt PASSWORD: the hash web.yml wants (cost 10)
  # Python < 3.13 has the crypt module (libcrypt does bcrypt on Debian); else the bcrypt package, else
  # htpasswd (apache2-utils).
  if python3 -W ignore -c 'import crypt' 2>/dev/null; then
    python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))' "$1"
  elif python3 -c 'import bcrypt' 2>/dev/null; then
    python3 -c 'import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(10)).decode())' "$1"
  elif command -v htpasswd >/dev/null; then
    htpasswd -nbBC 10 x "$1" | cut -d: -f2
  else
    echo "make-certs: no bcrypt: needs Python < 3.13, python3-bcrypt or apache2-utils (htpasswd)" >&2
    exit 1
  fi
}

# A throw-away `openssl ca` setup: unlike `openssl x509 -req`, it takes explicit start and end
# dates, which the expired certificate needs.
sign() { # sign CSR CRT START END EXTFILE
  local db
  db=$(mktemp -d)
  : >"$db/index.txt"
  cat >"$db/ca.cnf" <<EOF
[ca]
default_ca = local
[local]
database = $db/index.txt
new_certs_dir = $db
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = any
rand_serial = yes
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
EOF
  openssl ca -batch -notext -config "$db/ca.cnf" -in "$1" -out "$2" -startdate "$3" -enddate "$4" \
    -extfile "$5" 2>/dev/null
  rm -rf "$db"
}

utc() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

if [[ ! -f ca.key ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
    -days 3650 -subj "/CN=edge-metrics CA" 2>/dev/null
fi

# The centre: vmauth (what the nodes reach) and Prometheus (UI/API, and the receiver behind vmauth);
# Alertmanager gets a certificate of its own, so its pod never holds the key the nodes trust as the centre.
service_sans() { # service_sans NAME...: localhost, the --san names, each Service's in-cluster names
  local san="DNS:localhost,IP:127.0.0.1" name
  for name in "$@"; do
    san+=",DNS:$name,DNS:$name.monitoring,DNS:$name.monitoring.svc,DNS:$name.monitoring.svc.cluster.local"
  done
  for name in "${sans[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
  done
  echo "$san"
}
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
server_cert() { # server_cert NAME START END SAN COMMON-NAME
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$4" >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$5" 2>/dev/null
  sign "$1.csr" "$1.crt" "$2" "$3" "$ext"
  rm -f "$1.csr"
}
centre_san=$(service_sans central-ingest central-prometheus)
server_cert central "$(utc '-1 hour')" "$(utc "+$days days")" "$centre_san" central-ingest
((expired)) && server_cert central-expired "$(utc '-30 days')" "$(utc '-1 day')" "$centre_san" central-ingest
server_cert alertmanager "$(utc '-1 hour')" "$(utc "+$days days")" "$(service_sans central-alertmanager)" \
  central-alertmanager
chmod 0644 ca.crt central*.crt alertmanager.crt

# The centre's own users (Prometheus web.yml): created once, kept on later runs.
for user in admin ingest prometheus; do
  [[ -f $user.password ]] || secret >"$user.password"
done
{
  echo "# Prometheus --web.config.file, written by tools/make-certs.sh. Every endpoint, the remote-write"
  echo "# receiver and /-/ready included, needs TLS and one of these users."
  echo "tls_server_config:"
  echo "  cert_file: central.crt"
  echo "  key_file: central.key"
  echo "  min_version: TLS12"
  echo "basic_auth_users:"
  for user in admin ingest prometheus; do
    echo "  $user: '$(bcrypt "$(cat "$user.password")")'"
  done
} >web.yml

# Alertmanager's users: without one, nobody silences, injects alerts, reads the configuration or
# reloads it (docs/security.md). Created once, kept on later runs.
for user in prometheus operator; do
  [[ -f alertmanager-$user.password ]] || secret >"alertmanager-$user.password"
done
{
  echo "# Alertmanager --web.config.file, written by tools/make-certs.sh. Every endpoint (the API, /metrics,"
  echo "# /-/reload, /-/ready) needs TLS and one of these users: prometheus (the central Prometheus) and"
  echo "# operator (amtool with amtool-http.yml)."
  echo "tls_server_config:"
  echo "  cert_file: alertmanager.crt"
  echo "  key_file: alertmanager.key"
  echo "  min_version: TLS12"
  echo "basic_auth_users:"
  for user in prometheus operator; do
    echo "  $user: '$(bcrypt "$(cat "alertmanager-$user.password")")'"
  done
} >alertmanager-web.yml
{
  echo "# amtool --http.config.file, written by tools/make-certs.sh: Alertmanager's operator user over TLS."
  echo "# Relative paths are read beside this file."
  echo "basic_auth:"
  echo "  username: operator"
  echo "  password_file: alertmanager-operator.password"
  echo "tls_config:"
  echo "  ca_file: ca.crt"
} >amtool-http.yml

# One token per node, kept on later runs (delete nodes/<node> and run again to rotate it).
for node in "${nodes[@]}"; do
  mkdir -p "nodes/$node"
  [[ -f nodes/$node/token ]] || secret >"nodes/$node/token"
  [[ -f nodes/$node/admin-key ]] || secret >"nodes/$node/admin-key"
  cp ca.crt "nodes/$node/ca.crt"
  # The cluster is the centre's to say, like the name: given now, or kept from an earlier run.
  if [[ -n $cluster ]]; then echo "$cluster" >"nodes/$node/cluster"; fi
  [[ -f nodes/$node/cluster ]] || echo default >"nodes/$node/cluster"
done

{
  echo "# vmauth -auth.config, written by tools/make-certs.sh. One user per edge node: the token is the"
  echo "# node's identity, and the backend URL names the node and its cluster (the gate sets both labels"
  echo "# from it; a node cannot choose another name)."
  echo "users:"
  for dir in nodes/*/; do
    node=$(basename "$dir")
    echo "  - name: $node"
    echo "    bearer_token: $(cat "$dir/token")"
    echo "    url_map:"
    if ((direct)); then
      # Straight to a store: vmauth replaces a client's own query args with these.
      echo "      - src_paths: [\"/api/v1/write\", \"/api/v1/import/prometheus\"]"
      echo "        url_prefix: \"$backend?extra_label=node=$node&extra_label=cluster=$(cat "$dir/cluster")\""
      if ((backend_auth)); then
        echo "        headers:"
        echo "          - \"Authorization: Basic $(printf 'ingest:%s' "$(cat ingest.password)" | base64 -w0)\""
      fi
    else
      # Remote write only: the path is matched whole, so a node cannot reach another node's prefix.
      echo "      - src_paths: [\"/api/v1/write\"]"
      echo "        url_prefix: \"$backend/node/$node/$(cat "$dir/cluster")\""
    fi
  done
} >auth.yml

# The gate's per-node limits (docs/security.md, "The gate"): one line per node, `NODE [series=N] [rate=N]
# [bytes=N]`; a node without a setting gets the gate's defaults. Kept on later runs with the operator's edits;
# a node new to this run is appended.
umask 022 # not secret: node names and numbers
if [[ ! -f gate-limits.conf ]]; then
  {
    echo "# The gate's per-node limits (edge-metrics gate --limits), written by tools/make-certs.sh and kept with"
    echo "# your edits: NODE [series=N] [rate=N] [bytes=N] (distinct series per hour, samples per second, request"
    echo "# bytes). What a line leaves out is the gate's default (deploy/vmauth/gate.flags)."
  } >gate-limits.conf
fi
for dir in nodes/*/; do
  node=$(basename "$dir")
  awk -v node="$node" '$1 == node { found = 1 } END { exit !found }' gate-limits.conf || echo "$node" >>gate-limits.conf
done

echo "make-certs: wrote $(pwd) (nodes: $(cd nodes && echo *))" >&2
