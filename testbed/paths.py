"""Where the checkout keeps what the testbed starts: the shipped configs in deploy/, the collector the virtualenv
installed, the simulator's library and the Debian components tools/fetch-components.sh unpacked."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPONENTS_ENV = REPO / ".cache" / "components" / "env"
SIM_LIB = REPO / "build" / "libi2csim.so"
# The collector as `make venv` installs it (editable: the checkout's src).
EDGE_METRICS = REPO / ".venv" / "bin" / "edge-metrics"

PROMETHEUS_DIR = DEPLOY / "prometheus"
VMAGENT_TARGET_EXAMPLE = PROMETHEUS_DIR / "targets" / "vmagent-NODE.json.example"
VMAGENT_FLAGS = DEPLOY / "vmagent" / "vmagent.flags"
VMAGENT_SCRAPE = DEPLOY / "vmagent" / "scrape.yml"
NODE_EXPORTER_FLAGS = DEPLOY / "node-exporter" / "node-exporter.flags"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_MANIFEST = DEPLOY / "kubernetes" / "central" / "alertmanager.yaml"
VMAUTH_FLAGS = DEPLOY / "vmauth" / "vmauth.flags"
GATE_FLAGS = DEPLOY / "vmauth" / "gate.flags"
RUN_ALERTMANAGER = REPO / "tools" / "run-alertmanager.sh"
MAKE_CERTS = REPO / "tools" / "make-certs.sh"
# Where the manifests mount the centre's Secret and a node's credentials; the testbed's files live elsewhere.
CENTRAL_SECRET_DIR = "/etc/edge-metrics-central/"
NODE_CREDENTIALS_DIR = "/etc/edge-metrics/credentials/"
CLUSTER = "test"  # the cluster label of every sample (-remoteWrite.label=cluster=$(CLUSTER), vmagent.flags)

# The compatibility job's components (bookworm's Prometheus 2.42 and vmagent 1.79), as components() keys.
COMPAT_PROMETHEUS = "COMPAT_PROMETHEUS_BIN"
COMPAT_VMAGENT = "COMPAT_VMAGENT_BIN"


def components() -> dict[str, str]:
    """Paths of the Debian components unpacked by tools/fetch-components.sh (run by `make test`)."""
    if not COMPONENTS_ENV.exists():
        raise RuntimeError(f"{COMPONENTS_ENV} missing: run `make components` (make test does)")
    values: dict[str, str] = {}
    for line in COMPONENTS_ENV.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values
