"""Getting the dashboards into a Grafana: provisioning files and the sidecar ConfigMaps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.grafana.dashboards import DASHBOARD_FILES, GRAFANA_DIR
from tests.helpers import REPO
from tests.k8s.manifests import find, kustomize, load_all, rendered

COMPONENT = REPO / "deploy" / "kubernetes" / "components" / "grafana-dashboards"
PROVISIONING = GRAFANA_DIR / "provisioning"
# `kubectl apply` (client side) copies each object into an annotation, limited to 256 KiB in total.
APPLY_ANNOTATION_LIMIT = 256 * 1024


def with_component(tmp_path: Path) -> list[dict[str, Any]]:
    """What a user's kustomization that adds the component renders (components need relative paths)."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "monitoring",
                "components": [os.path.relpath(COMPONENT, tmp_path)],
            }
        )
    )
    return load_all(kustomize(tmp_path))


class TestSidecarConfigMaps:
    def test_one_labelled_configmap_per_dashboard_holding_the_committed_json(self, tmp_path: Path) -> None:
        """The Grafana sidecar convention: label grafana_dashboard "1", one dashboard file per
        ConfigMap, content byte for byte the generated JSON, a stable name (no hash suffix)."""
        objects = with_component(tmp_path)
        assert {obj["kind"] for obj in objects} == {"ConfigMap"}
        assert len(objects) == len(DASHBOARD_FILES)
        for path in DASHBOARD_FILES:
            configmap = find(objects, "ConfigMap", f"grafana-dashboard-{path.stem}")
            assert configmap["metadata"]["name"] == f"grafana-dashboard-{path.stem}"
            assert configmap["metadata"]["labels"] == {"grafana_dashboard": "1"}
            assert configmap["metadata"]["namespace"] == "monitoring"
            assert configmap["data"] == {path.name: path.read_text()}
            assert len(yaml.safe_dump(configmap).encode()) < APPLY_ANNOTATION_LIMIT
            kubernetes_validate.validate(configmap, kubernetes_validate.utils.latest_version(), strict=True)

    def test_not_part_of_the_default_deployment(self) -> None:
        """all-in-one.yaml stays as it was: the dashboards are only for clusters with a Grafana sidecar."""
        assert not [obj for obj in rendered() if obj["metadata"].get("labels", {}).get("grafana_dashboard")]


class TestProvisioningFiles:
    def test_datasource_is_the_central_prometheus_service(self) -> None:
        """The provisioned datasource points at the Service of deploy/kubernetes/central."""
        config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
        (datasource,) = config["datasources"]
        assert datasource["type"] == "prometheus" and datasource["isDefault"]
        services = yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "central" / "service.yaml").read_text())
        (service,) = [s for s in services if s["metadata"]["name"] == "central-prometheus"]
        port = service["spec"]["ports"][0]["port"]
        # The centre serves only TLS with basic auth (docs/security.md).
        assert datasource["url"] == f"https://{service['metadata']['name']}.monitoring.svc:{port}"
        assert datasource["basicAuth"] is True and datasource["jsonData"]["tlsAuthWithCACert"] is True
        assert set(datasource["secureJsonData"]) == {"basicAuthPassword", "tlsCACert"}
        scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
        assert datasource["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]

    @pytest.mark.parametrize("path", sorted((PROVISIONING / "dashboards").glob("*.yml")), ids=lambda p: p.name)
    def test_dashboard_provider_reads_files(self, path: Path) -> None:
        config = yaml.safe_load(path.read_text())
        (provider,) = config["providers"]
        assert config["apiVersion"] == 1
        assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
        assert provider["allowUiUpdates"] is False  # the JSON is generated: UI edits would be lost
