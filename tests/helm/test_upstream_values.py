"""Values for the upstream charts (deploy/helm/values): the collector as a sidecar of the prometheus-node-exporter
chart, and kube-prometheus-stack's Prometheus as the centre. Those charts are not fetched here (they were rendered
by hand: docs/kubernetes.md), so this checks what can be checked without them: valid YAML, the sidecar is the
DaemonSet's metric-sidecar (less the push settings), and every path agrees between the sidecar, node_exporter's
flags and the volumes, counting the mounts the node-exporter chart adds to every sidecar itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO
from tests.k8s.manifests import container, find, rendered

pytestmark = pytest.mark.k8s

VALUES = REPO / "deploy" / "helm" / "values"
# What only a pod with the node's own vmagent needs: the push to it, and the check of the files it writes with.
PUSH_ONLY = {"EDGE_PUSH_URL", "EDGE_SPOOL_DIR", "EDGE_SPOOL_MAX_BYTES", "EDGE_CREDENTIAL_FILES"}


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
        for field in ("image", "args", "livenessProbe", "resources"):
            assert sidecar[field] == ours[field], field
        # The chart's pod securityContext has runAsNonRoot: true, which a root container must override.
        assert sidecar["securityContext"] == {**ours["securityContext"], "runAsNonRoot": False}
        assert sidecar["env"] == [e for e in ours["env"] if e["name"] not in PUSH_ONLY]

    def test_paths_agree(self) -> None:
        values = load("prometheus-node-exporter.yaml")
        sidecar = self.sidecar()
        env = {e["name"]: e.get("value") for e in sidecar["env"]}
        shared = {m["name"]: m["mountPath"] for m in values["sidecarVolumeMount"]}
        own = sidecar["volumeMounts"]
        # The chart mounts every sidecarVolumeMount into the sidecar itself: repeating one is a duplicate mount.
        assert not {m["name"] for m in own} & set(shared)
        assert not {m["mountPath"] for m in own} & set(shared.values())
        mounts = {m["mountPath"]: m["name"] for m in own} | {path: name for name, path in shared.items()}
        configmaps = {c["name"]: c["mountPath"] for c in values["configmaps"]}
        volumes = {v["name"]: v for v in values.get("extraVolumes", [])}
        textfile_dir = [a.split("=", 1)[1] for a in values["extraArgs"]
                        if a.startswith("--collector.textfile.directory=")]
        output_dir = directory_of(env["EDGE_OUTPUT"])
        assert textfile_dir == [output_dir]
        assert shared[mounts[output_dir]] == output_dir, "the textfile directory is the shared emptyDir"
        config_dir = directory_of(env["EDGE_CONFIG"])
        assert configmaps[mounts[config_dir]] == config_dir, "nodes.conf is in the ConfigMap volume"
        assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp is the sidecar's own emptyDir, not node_exporter's"
        # Every mount of the sidecar is a volume the chart creates: shared emptyDir, ConfigMap or extra volume.
        assert set(mounts.values()) <= set(shared) | set(configmaps) | set(volumes)


class TestKubePrometheusStack:
    def test_centre_settings_are_our_centres(self) -> None:
        spec = load("kube-prometheus-stack.yaml")["prometheus"]["prometheusSpec"]
        prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
        assert spec["enableRemoteWriteReceiver"] is True
        assert spec["tsdb"]["outOfOrderTimeWindow"] == prometheus["storage"]["tsdb"]["out_of_order_time_window"]

    def test_self_monitoring_scrapes_over_tls(self) -> None:
        prometheus = load("kube-prometheus-stack.yaml")["prometheus"]
        assert prometheus["serviceMonitor"]["scheme"] == "https"
        assert prometheus["serviceMonitor"]["tlsConfig"]["ca"]["secret"] == {"name": "central-credentials",
                                                                             "key": "ca.crt"}
        assert prometheus["prometheusSpec"]["externalUrl"].startswith("https://")

    def test_tls_comes_from_the_secret_make_certs_fills(self) -> None:
        tls = load("kube-prometheus-stack.yaml")["prometheus"]["prometheusSpec"]["web"]["tlsConfig"]
        docs = (REPO / "docs" / "security.md").read_text()
        for ref in (tls["cert"]["secret"], tls["keySecret"]):
            assert ref["name"] == "central-credentials"
            assert f"--from-file=.run/pki/{ref['key']}" in docs, ref

