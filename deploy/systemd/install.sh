#!/usr/bin/env bash
# The collector and the node's vmagent as hardened systemd services, on a Debian board without
# Kubernetes (docs/kubernetes.md, "A board without Kubernetes"). As root, from a checkout:
#
#   deploy/systemd/install.sh --remote-write-url https://centre.example.org:8427/api/v1/write \
#     --cluster site-7 --credentials .run/pki/nodes/$(hostname)
#
#   --remote-write-url URL  the centre's vmauth (written to /etc/default/edge-metrics)
#   --cluster NAME          the cluster label of every sample (default: default)
#   --timezone ZONE         TZ of the collector's logs (default: the board's own zone)
#   --credentials DIR       this node's files from tools/make-certs.sh (ca.crt, token, admin-key)
#   --root DIR              install below DIR instead of / (inspection, tests): no packages, no systemctl
#   --skip-venv             do not (re)create /opt/edge-metrics (it exists already)
#
# It installs Debian's python3-venv, i2c-tools and victoria-metrics (for /usr/bin/vmagent; that
# package's own VictoriaMetrics server is disabled), the collector into /opt/edge-metrics, your
# nodes.conf and scripts into /etc/edge-metrics (the repository's, only where none exist yet), then
# enables and starts edge-metrics-vmagent and edge-metrics-collector.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/deploy/systemd"
root=""
url=""
cluster=""
timezone=""
credentials=""
skip_venv=0
usage() { sed -n '2,17p' "$0" >&2; exit 2; }
while (($#)); do
  case $1 in
    --remote-write-url) url=${2:?}; shift 2 ;;
    --cluster) cluster=${2:?}; shift 2 ;;
    --timezone) timezone=${2:?}; shift 2 ;;
    --credentials) credentials=${2:?}; shift 2 ;;
    --root) root=${2:?}; shift 2 ;;
    --skip-venv) skip_venv=1; shift ;;
    -h|--help) usage ;;
    *) echo "install: unknown argument $1" >&2; usage ;;
  esac
done
if [[ -n $credentials ]]; then
  for file in ca.crt token admin-key; do
    [[ -s $credentials/$file ]] || { echo "install: $credentials/$file missing (tools/make-certs.sh --node)" >&2; exit 2; }
  done
fi

if [[ -z $root ]]; then
  apt-get update -qq
  apt-get install -y --no-install-recommends python3-venv i2c-tools victoria-metrics
  # The package also ships the VictoriaMetrics server as a service: a board runs only the agent.
  systemctl disable --now victoria-metrics.service 2>/dev/null || true
fi

if ((!skip_venv)); then
  python3 -m venv "$root/opt/edge-metrics"
  "$root/opt/edge-metrics/bin/pip" install --quiet "$top"
fi

install -d -m 0755 "$root/etc/systemd/system" "$root/etc/edge-metrics" "$root/etc/edge-metrics/vmagent" \
  "$root/etc/default"
install -m 0644 "$here/edge-metrics-collector.service" "$here/edge-metrics-vmagent.service" "$root/etc/systemd/system/"
# vmagent's `node-exporter` job scrapes the collector's own endpoint: the board runs no node_exporter of ours.
install -m 0644 "$top/deploy/kubernetes/components/no-node-exporter/scrape.yml" "$root/etc/edge-metrics/vmagent/"
if [[ ! -e $root/etc/edge-metrics/nodes.conf ]]; then
  install -m 0644 "$top/scripts/nodes.conf" "$root/etc/edge-metrics/"
  install -m 0755 "$top"/scripts/*.sh "$root/etc/edge-metrics/"
fi
if [[ -n $credentials ]]; then
  install -d -m 0700 "$root/etc/edge-metrics/credentials"
  install -m 0600 "$credentials"/{ca.crt,token,admin-key} "$root/etc/edge-metrics/credentials/"
fi
defaults="$root/etc/default/edge-metrics"
touch "$defaults"
set_default() {  # NAME VALUE: one NAME=VALUE line in /etc/default/edge-metrics
  [[ -n $2 ]] || return 0
  grep -v "^$1=" "$defaults" >"$defaults.new" || true
  printf '%s=%s\n' "$1" "$2" >>"$defaults.new"
  mv "$defaults.new" "$defaults"
}
set_default REMOTE_WRITE_URL "$url"
set_default CLUSTER "$cluster"
set_default TZ "$timezone"

if [[ -z $root ]]; then
  systemctl daemon-reload
  systemctl enable --now edge-metrics-vmagent.service edge-metrics-collector.service
  systemctl --no-pager status edge-metrics-vmagent.service edge-metrics-collector.service || true
fi
echo "install: done; logs: journalctl -u edge-metrics-collector -u edge-metrics-vmagent" >&2
