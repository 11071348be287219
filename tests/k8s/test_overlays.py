"""The kustomize overlays users copy (deploy/overlays) and the no-node-exporter component: they render, validate
strictly, and do what docs/kubernetes.md says; the docs show exactly these files."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import template
from tests.helpers import EDGE_METRICS, REPO
from tests.k8s.manifests import ALL_IN_ONE, SCHEMA_VERSIONS, container, find, kustomize, load_all, schema_errors

pytestmark = pytest.mark.k8s

OVERLAYS = REPO / "deploy" / "overlays"
COMPONENT = REPO / "deploy" / "kubernetes" / "components" / "no-node-exporter"
DOCS = REPO / "docs" / "kubernetes.md"


def pod_spec(objects: list[dict[str, object]]) -> dict[str, object]:
    return find(objects, "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(entry: dict[str, object]) -> dict[str, object]:
    return {item["name"]: item.get("value") for item in entry.get("env", [])}  # type: ignore[attr-defined]


@pytest.mark.parametrize("overlay", sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()))
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_overlay_renders_and_validates_strictly(overlay: str, version: str) -> None:
    assert schema_errors(load_all(kustomize(OVERLAYS / overlay)), version) == []


class TestOwnScripts:
    """Your scripts without a fork: the overlay's files replace the generated ConfigMap, and the check that CI runs
    before `kubectl apply` passes on the render."""

    def test_configmap_is_exactly_the_overlays_files(self) -> None:
        objects = load_all(kustomize(OVERLAYS / "own-scripts"))
        data = find(objects, "ConfigMap", "edge-metrics-config")["data"]
        assert data == {name: (OVERLAYS / "own-scripts" / name).read_text() for name in ("nodes.conf", "power_rail.sh")}
        volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == "config")  # type: ignore[attr-defined]
        assert volume["configMap"]["name"] == find(objects, "ConfigMap", "edge-metrics-config")["metadata"]["name"]

    def test_check_configmap_passes_on_the_render(self, tmp_path: Path) -> None:
        rendered = tmp_path / "rendered.yaml"
        rendered.write_text(kustomize(OVERLAYS / "own-scripts"))
        result = subprocess.run([str(EDGE_METRICS), "check", "--configmap", str(rendered)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "lab-*: power_rail every 1m" in result.stdout

    def test_docs_show_these_files(self) -> None:
        docs = DOCS.read_text()
        for name in ("kustomization.yaml", "nodes.conf", "power_rail.sh"):
            assert (OVERLAYS / "own-scripts" / name).read_text() in docs, name


def _credentials_label() -> dict[str, str]:
    """The label tools/node-credentials.sh puts on a node once its credentials are in place (its --label default)."""
    script = (REPO / "tools" / "node-credentials.sh").read_text()
    match = re.search(r"^label=(\S+)=(\S+)$", script, re.M)
    assert match, "tools/node-credentials.sh: no label= default"
    return {match.group(1): match.group(2)}


class TestSiteDefaults:
    def test_patch_sets_arm64_the_sensor_nodes_the_zone_and_the_cluster(self) -> None:
        """The pods go only where tools/node-credentials.sh has placed credentials: the label it sets."""
        spec = pod_spec(load_all(kustomize(OVERLAYS / "site")))
        label = _credentials_label()
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", **label}
        assert env_of(container(spec, "metric-sidecar"))["TZ"] == "Europe/Berlin"
        assert env_of(container(spec, "vmagent"))["CLUSTER"] == "site-7"

    def test_centre_runs_on_a_server_node(self) -> None:
        objects = load_all(kustomize(OVERLAYS / "site"))
        spec = find(objects, "Deployment", "central-prometheus")["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}


class TestNoNodeExporter:
    def test_scrape_config_is_the_shipped_one_but_for_the_target(self) -> None:
        """One source: the component's scrape.yml is deploy/vmagent/scrape.yml with the `node-exporter` job's target
        moved to the collector's endpoint (and its header saying so)."""
        shipped = yaml.safe_load((REPO / "deploy" / "vmagent" / "scrape.yml").read_text())
        ours = yaml.safe_load((COMPONENT / "scrape.yml").read_text())
        listen = env_of(container(pod_spec(load_all(kustomize(OVERLAYS / "no-node-exporter"))), "metric-sidecar"))[
            "EDGE_METRICS_LISTEN"]
        shipped["scrape_configs"][0]["static_configs"] = [{"targets": [listen]}]
        assert ours == shipped

    def test_nothing_on_9100_and_no_host_filesystem(self) -> None:
        objects = load_all(kustomize(OVERLAYS / "no-node-exporter"))
        spec = pod_spec(objects)
        assert [c["name"] for c in spec["containers"]] == ["metric-sidecar", "vmagent"]  # type: ignore[attr-defined]
        assert "9100" not in yaml.safe_dump(spec)
        assert "9100" not in find(objects, "ConfigMap", "vmagent-config")["data"]["scrape.yml"]
        assert {v["name"] for v in spec["volumes"]} & {"proc", "sys", "root"} == set()  # type: ignore[attr-defined]


def host_ports(spec: dict[str, Any]) -> set[int]:
    """The node ports the pod claims, as the scheduler sees them: with host network every containerPort is one (the
    API server sets hostPort to it), so a second pod claiming one of them cannot be placed on that node."""
    return {int(port.get("hostPort", port["containerPort"])) for entry in spec["containers"]
            for port in entry.get("ports", []) if spec.get("hostNetwork") or "hostPort" in port}


def own_kustomization(tmp_path: Path) -> list[dict[str, Any]]:
    """A kustomization of yours as the docs combine them: your scripts' overlay plus the no-node-exporter component."""
    here = tmp_path / "mine"
    here.mkdir()
    (here / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAYS / "own-scripts", here)],
        "components": [os.path.relpath(COMPONENT, here)],
    }))
    return load_all(kustomize(here))


def step_three_table() -> dict[str, list[str]]:
    """docs/kubernetes.md, Before any path, step 3: "with"/"without" -> its Helm, kustomize, all-in-one cells."""
    rows = re.findall(r"^ *\| (a node_exporter already|none \([^|]*\)) \| (.*) \|$", DOCS.read_text(), re.M)
    assert len(rows) == 2, rows
    return {("with" if first.startswith("a node") else "without"): [c.strip() for c in rest.split(" | ")]
            for first, rest in rows}


class TestChoosingNodeExporter:
    """Issue 20, item 2: each path has its variant for a cluster that already runs node_exporter on every node's
    :9100, and the docs' table names them. Every variant the table names for such a cluster claims no port 9100 of
    the node (so its pods can be placed beside that node_exporter); every variant for a node without one runs ours
    on 9100."""

    def test_docs_name_each_paths_variant(self) -> None:
        table = step_three_table()
        helm, kustomize_cell, all_in_one = table["with"]
        assert "`nodeExporter.bundled: false`" in helm and "default" in helm
        assert "`deploy/overlays/no-node-exporter`" in kustomize_cell
        assert "components/no-node-exporter" in kustomize_cell
        assert "Pending" in all_in_one
        helm, kustomize_cell, all_in_one = table["without"]
        assert "`nodeExporter.bundled: true`" in helm and "`deploy/kubernetes`" in kustomize_cell

    def test_beside_a_node_exporter_nothing_claims_9100(self, tmp_path: Path) -> None:
        variants = {
            "helm default": pod_spec(template()),
            "deploy/overlays/no-node-exporter": pod_spec(load_all(kustomize(OVERLAYS / "no-node-exporter"))),
            "own-scripts + the component": pod_spec(own_kustomization(tmp_path)),
        }
        claims = {name: host_ports(spec) for name, spec in variants.items()}
        assert {name: 9100 in ports for name, ports in claims.items()} == dict.fromkeys(variants, False), claims
        # The collector's own endpoint is what vmagent scrapes there instead.
        assert all(ports == {8429, 9101} for ports in claims.values()), claims

    def test_without_one_ours_runs_on_9100(self) -> None:
        variants = {
            "helm nodeExporter.bundled=true": pod_spec(template(sets=("nodeExporter.bundled=true",))),
            "deploy/kubernetes": pod_spec(load_all(kustomize())),
            "all-in-one.yaml": pod_spec(load_all(ALL_IN_ONE.read_text())),
        }
        claims = {name: host_ports(spec) for name, spec in variants.items()}
        assert all(ports == {8429, 9100} for ports in claims.values()), claims
