#!/usr/bin/env bash
# Credentials for the secure path (docs/security.md): a CA, the centre's TLS certificate, one bearer
# token per edge node, the passwords of the centre's own users, and the configs that use them.
#
#   tools/make-certs.sh [--out DIR] [--node NAME]... [--san NAME]... [--backend URL] [--backend-auth]
#                       [--store URL] [--queues-dir DIR] [--cluster NAME] [--days N] [--expired]
#
#   --out DIR       where everything goes (default .run/pki, git-ignored); an existing CA there is kept,
#                   so running it again adds nodes and renews certificates without breaking the others
#   --node NAME     an edge node that may write (repeat; default bupt-a)
#   --san NAME      an extra DNS name or IP address for the centre's certificate (repeat)
#   --backend URL   where vmauth forwards an authenticated node's write (default: the central
#                   vmagent beside it, http://127.0.0.1:8430; the request path is appended); `extra_label=node=<node>`
#                   is appended for every node, so the node label comes from the credential
#   --backend-auth  vmauth sends the `ingest` user's basic auth to the backend (a backend that is the
#                   central Prometheus itself, with web.yml)
#   --store URL     where the central vmagent writes each node's own queue (default the Prometheus
#                   beside it, https://127.0.0.1:9090/api/v1/write)
#   --queues-dir DIR  where the central vmagent finds central-vmagent-queues/ (default its mount in the
#                   manifests, /etc/central-vmagent-queues)
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
#   central-vmagent-queues/            the central vmagent's queue per node (the ConfigMap
#                                      central-vmagent-queues): `urls` and `relabel-configs` (its
#                                      -remoteWrite.url and -remoteWrite.urlRelabelConfig lists), and
#                                      <node>.yml / new-nodes.yml (what each queue keeps)
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
store=https://127.0.0.1:9090/api/v1/write
queues_dir=/etc/central-vmagent-queues
cluster=
days=365
expired=0
usage() { sed -n '5,23p' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --node) nodes+=("${2:?--node needs a name}"); shift 2 ;;
    --san) sans+=("${2:?--san needs a name}"); shift 2 ;;
    --backend) backend=${2:?--backend needs a URL}; shift 2 ;;
    --backend-auth) backend_auth=1; shift ;;
    --store) store=${2:?--store needs a URL}; shift 2 ;;
    --queues-dir) queues_dir=${2:?--queues-dir needs a directory}; shift 2 ;;
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
[[ $store == *\?* ]] && { echo "make-certs: --store takes a URL without a query ('$store')" >&2; exit 2; }

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

separator='?'
[[ $backend == *\?* ]] && separator='&'
{
  echo "# vmauth -auth.config, written by tools/make-certs.sh. One user per edge node: the token is the"
  echo "# node's identity, and extra_label sets the node label on everything it writes (vmauth replaces"
  echo "# a client's own query args with these, so a node cannot choose another name)."
  echo "users:"
  for dir in nodes/*/; do
    node=$(basename "$dir")
    echo "  - name: $node"
    echo "    bearer_token: $(cat "$dir/token")"
    echo "    url_map:"
    echo "      - src_paths: [\"/api/v1/write\", \"/api/v1/import/prometheus\"]"
    echo "        url_prefix: \"$backend${separator}extra_label=node=$node&extra_label=cluster=$(cat "$dir/cluster")\""
    if ((backend_auth)); then
      echo "        headers:"
      echo "          - \"Authorization: Basic $(printf 'ingest:%s' "$(cat ingest.password)" | base64 -w0)\""
    fi
  done
} >auth.yml

# The central vmagent keeps one queue per node (docs/security.md, "One queue per node"): the store
# refuses a whole request for one bad sample, so a request must never hold two nodes' samples. One
# -remoteWrite.url per node (the node in its query, which the store ignores and the queue's metrics
# show), each keeping only that node's series; a last queue takes nodes added since the central vmagent
# started (vmauth knows them at once, the vmagent's list only at its next start).
rm -rf central-vmagent-queues
mkdir central-vmagent-queues
umask 022 # not secret: node names and paths
urls=()
relabels=()
known=()
for dir in nodes/*/; do
  node=$(basename "$dir")
  known+=("${node//./\\.}")
  urls+=("$store?node=$node&cluster=$(cat "$dir/cluster")")
  relabels+=("$queues_dir/$node.yml")
  printf '# The queue of node %s only (tools/make-certs.sh).\n- action: keep\n  source_labels: [node]\n  regex: %s\n' \
    "$node" "'${node//./\\.}'" >"central-vmagent-queues/$node.yml"
done
urls+=("$store?queue=new-nodes")
relabels+=("$queues_dir/new-nodes.yml")
printf '# Nodes added to auth.yml since the central vmagent started: one shared queue until its restart.\n- action: drop\n  source_labels: [node]\n  regex: %s\n' \
  "'$(IFS='|'; echo "${known[*]}")'" >central-vmagent-queues/new-nodes.yml
(IFS=,; echo "${urls[*]}") >central-vmagent-queues/urls
(IFS=,; echo "${relabels[*]}") >central-vmagent-queues/relabel-configs

echo "make-certs: wrote $(pwd) (nodes: $(cd nodes && echo *))" >&2
