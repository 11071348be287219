"""Values for the upstream charts (deploy/helm/values): the collector as a sidecar of the prometheus-node-exporter
chart, and kube-prometheus-stack's Prometheus as the centre. Those charts cannot be fetched here, so this checks
what can be checked without them: valid YAML, the sidecar is the DaemonSet's metric-sidecar (less the push
settings), and every path agrees between the sidecar, node_exporter's flags and the shared volumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO
from tests.k8s.manifests import container, find, rendered

pytestmark = pytest.mark.k8s

VALUES = REPO / "deploy" / "helm" / "values"
PUSH_ONLY = {"EDGE_PUSH_URL", "EDGE_SPOOL_DIR", "EDGE_SPOOL_MAX_BYTES"}


def load(name: str) -> Any:
    return yaml.safe_load((VALUES / name).read_text())


def directory_of(path: str) -> str:
    return str(Path(path).parent)


class TestNodeExporterSidecar:
    def sidecar(self) -> dict[str, Any]:
        sidecars = load("prometheus-node-exporter.yaml")["sidecars"]
        assert [s["name"] for s in sidecars] == ["metric-sidecar"]
        return dict(sidecars[0])

    def test_sidecar_is_the_daemonsets_collector_without_push(self) -> None:
        ours = container(find(rendered(), "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"],
                         "metric-sidecar")
        sidecar = self.sidecar()
        for field in ("image", "args", "livenessProbe", "resources", "securityContext"):
            assert sidecar[field] == ours[field], field
        assert sidecar["env"] == [e for e in ours["env"] if e["name"] not in PUSH_ONLY]

    def test_paths_agree(self) -> None:
        values = load("prometheus-node-exporter.yaml")
        sidecar = self.sidecar()
        env = {e["name"]: e.get("value") for e in sidecar["env"]}
        mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
        shared = {m["name"]: m["mountPath"] for m in values["sidecarVolumeMount"]}
        configmaps = {c["name"]: c["mountPath"] for c in values["configmaps"]}
        textfile_dir = [a.split("=", 1)[1] for a in values["extraArgs"]
                        if a.startswith("--collector.textfile.directory=")]
        output_dir = directory_of(env["EDGE_OUTPUT"])
        assert textfile_dir == [output_dir]
        assert shared[mounts[output_dir]] == output_dir, "the textfile directory is the shared emptyDir"
        config_dir = directory_of(env["EDGE_CONFIG"])
        assert configmaps[mounts[config_dir]] == config_dir, "nodes.conf is in the ConfigMap volume"
        assert shared[mounts["/tmp"]] == "/tmp"
        # Every mount of the sidecar is a volume the chart creates: a shared emptyDir or a ConfigMap.
        assert set(mounts.values()) <= set(shared) | set(configmaps)


class TestKubePrometheusStack:
    def test_centre_settings_are_our_centres(self) -> None:
        spec = load("kube-prometheus-stack.yaml")["prometheus"]["prometheusSpec"]
        prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
        assert spec["enableRemoteWriteReceiver"] is True
        assert spec["tsdb"]["outOfOrderTimeWindow"] == prometheus["storage"]["tsdb"]["out_of_order_time_window"]

    def test_tls_comes_from_the_secret_make_certs_fills(self) -> None:
        tls = load("kube-prometheus-stack.yaml")["prometheus"]["prometheusSpec"]["web"]["tlsConfig"]
        docs = (REPO / "docs" / "security.md").read_text()
        for ref in (tls["cert"]["secret"], tls["keySecret"]):
            assert ref["name"] == "central-credentials"
            assert f"--from-file=.run/pki/{ref['key']}" in docs, ref
