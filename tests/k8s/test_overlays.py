"""The kustomize overlays users copy (deploy/overlays) and the no-node-exporter component: they render, validate
strictly, and do what docs/kubernetes.md says; the docs show exactly these files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import EDGE_METRICS, REPO
from tests.k8s.manifests import SCHEMA_VERSIONS, container, find, kustomize, load_all, schema_errors

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


class TestSiteDefaults:
    def test_patch_sets_arm64_the_zone_and_the_cluster(self) -> None:
        spec = pod_spec(load_all(kustomize(OVERLAYS / "site")))
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
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
