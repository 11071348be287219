"""The Helm chart, with the real helm: it lints, renders with its defaults and with every values file of
tests/helm/values, every object passes the strict schema check the kustomize output passes, and set up as the
manifests are it renders exactly their objects."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import (
    CHART,
    NAMESPACE,
    VALUES,
    Obj,
    helm,
    helm_error,
    key,
    refusal,
    template,
    template_text,
    without_chart_labels,
    without_hashes,
)
from tests.helpers import EDGE_METRICS, REPO
from tests.k8s.manifests import (
    KUSTOMIZE_DIR,
    SCHEMA_VERSIONS,
    container,
    find,
    kustomize,
    load_all,
    rendered,
    schema_errors,
)

pytestmark = pytest.mark.k8s

VALUES_FILES = sorted(VALUES.glob("*.yaml"))
OVERLAYS = REPO / "deploy" / "overlays"
DOCS = REPO / "docs" / "kubernetes.md"
CASES = [pytest.param((), id="defaults")] + [pytest.param((path,), id=path.stem) for path in VALUES_FILES]


def pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = find(objects, "DaemonSet", "node-exporter-arm64")["spec"]["template"]["spec"]
    return spec


def env_of(entry: Obj) -> dict[str, object]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in entry.get("env", [])}


class TestLintAndRender:
    @pytest.mark.parametrize("values", CASES)
    def test_helm_lint_passes(self, values: tuple[Path, ...]) -> None:
        args = [arg for path in values for arg in ("--values", str(path))]
        result = helm("lint", CHART, "--strict", "--namespace", NAMESPACE, *args)
        assert result.returncode == 0, result.stdout + helm_error(result.stderr)

    def test_packaged_chart_renders_the_same(self, tmp_path: Path) -> None:
        """`helm package` stores the contents of files/'s links: the archive a registry serves is self-contained."""
        packaged = helm("package", CHART, "--destination", tmp_path)
        assert packaged.returncode == 0, helm_error(packaged.stderr)
        (archive,) = tmp_path.glob("edge-metrics-collector-*.tgz")
        result = helm("template", "edge", archive, "--namespace", NAMESPACE)
        assert result.returncode == 0, helm_error(result.stderr)
        assert load_all(result.stdout) == template()

    @pytest.mark.parametrize("version", SCHEMA_VERSIONS)
    @pytest.mark.parametrize("values", CASES)
    def test_every_rendered_object_validates_strictly(self, values: tuple[Path, ...], version: str) -> None:
        """The check of tests/k8s/test_manifests.py (unknown fields are errors); the operators' objects are
        checked against their CRDs below."""
        objects = [o for o in template(*values) if "." not in o["apiVersion"].split("/")[0]
                   or o["apiVersion"].startswith(("apps/", "rbac.", "networking.k8s.io/"))]
        assert objects
        assert schema_errors(objects, version) == []

    @pytest.mark.parametrize("values", CASES)
    def test_operator_objects_fit_their_crds(self, values: tuple[Path, ...]) -> None:
        from tests.k8s.test_operators import crd_schemas, pruned_fields, validate

        schemas = crd_schemas()
        for obj in template(*values):
            if (obj["apiVersion"], obj["kind"]) in schemas:
                schema = schemas[(obj["apiVersion"], obj["kind"])]
                validate(obj, schema)
                assert list(pruned_fields(obj, schema)) == [], key(obj)


class TestOneSourceWithKustomize:
    """Set up as the manifests are (tests/helm/values/kustomize.yaml), the chart renders kustomize's objects."""

    @pytest.mark.parametrize(("sets", "kustomization"), [
        pytest.param(("nodeExporter.bundled=true",), KUSTOMIZE_DIR, id="deploy/kubernetes"),
        pytest.param(("nodeExporter.bundled=false",), OVERLAYS / "no-node-exporter", id="defaults: no-node-exporter"),
    ])
    def test_chart_renders_the_kustomize_objects_one_by_one(self, sets: tuple[str, ...], kustomization: Path
                                                            ) -> None:
        """With the seed's zone (the one setting of kustomize.yaml besides node_exporter), the chart's objects
        are kustomize's: the full pod, or the default one without node_exporter."""
        chart = {key(o): without_chart_labels(o) for o in template(VALUES / "kustomize.yaml", sets=sets)}
        # The chart does not own its namespace (helm install --namespace; docs/kubernetes.md labels it).
        kustomized = {key(o): o for o in without_hashes(load_all(kustomize(kustomization)))
                      if o["kind"] != "Namespace"}
        assert sorted(chart) == sorted(kustomized)
        for name, obj in kustomized.items():
            assert chart[name] == obj, name

    def test_a_drift_is_caught(self) -> None:
        """The control for the test above: one env value changed is a difference in the DaemonSet."""
        chart = {key(o): without_chart_labels(o) for o in template(VALUES / "kustomize.yaml", sets=("timeZone=UTC",))}
        kustomized = {key(o): o for o in without_hashes(rendered())}
        daemonset = ("DaemonSet", "node-exporter-arm64")
        assert chart[daemonset] != kustomized[daemonset]
        assert chart[("ConfigMap", "edge-metrics-config")] == kustomized[("ConfigMap", "edge-metrics-config")]

    def test_kustomize_values_file_differs_from_the_defaults_only_where_it_says(self) -> None:
        """Each setting of kustomize.yaml is a documented difference of the chart's defaults."""
        text = (VALUES / "kustomize.yaml").read_text()
        settings = yaml.safe_load(text)
        assert set(settings) == {"nodeExporter", "timeZone"}
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())
        assert defaults["nodeExporter"]["bundled"] is False and defaults["timeZone"] == ""


class TestDefaultsBesideAnExistingNodeExporter:
    """The default install binds nothing on :9100 and runs no node_exporter; the job the rules select scrapes
    the collector's own endpoint instead."""

    def test_no_node_exporter_and_nothing_on_9100(self) -> None:
        objects = template()
        spec = pod_spec(objects)
        assert [c["name"] for c in spec["containers"]] == ["metric-sidecar", "vmagent"]
        text = json.dumps(spec)
        assert "9100" not in text
        host_paths = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        assert not host_paths & {"/proc", "/sys", "/"}, "no host filesystem without a node_exporter to read it"
        scrape = yaml.safe_load(find(objects, "ConfigMap", "vmagent-config")["data"]["scrape.yml"])
        assert "9100" not in json.dumps(scrape)

    def test_the_rules_job_scrapes_the_collectors_endpoint(self) -> None:
        objects = template()
        listen = env_of(container(pod_spec(objects), "metric-sidecar"))["EDGE_METRICS_LISTEN"]
        scrape = yaml.safe_load(find(objects, "ConfigMap", "vmagent-config")["data"]["scrape.yml"])
        mixin = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())
        job = mixin["edgeSelector"].removeprefix('job="').removesuffix('"')
        jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
        assert jobs[job]["static_configs"] == [{"targets": [listen]}]
        assert str(listen).startswith("127.0.0.1:")

    def test_bundled_node_exporter_is_the_manifests_pod(self) -> None:
        spec = pod_spec(template(sets=("nodeExporter.bundled=true",)))
        assert [c["name"] for c in spec["containers"]] == ["node-exporter", "metric-sidecar", "vmagent"]
        assert "EDGE_METRICS_LISTEN" not in env_of(container(spec, "metric-sidecar"))


class TestValues:
    def test_arm64_example_adds_to_the_linux_selector(self) -> None:
        objects = template(VALUES / "arm64-boards.yaml")
        spec = pod_spec(objects)
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
        assert spec["priorityClassName"] == "edge-monitoring"
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
        sidecar = container(spec, "metric-sidecar")
        assert sidecar["image"] == ("registry.example.org/edge/edge-metrics-collector:0.1.0@sha256:"
                                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        assert sidecar["resources"]["limits"]["memory"] == "128Mi"
        assert env_of(sidecar)["TZ"] == "Europe/Berlin"
        assert env_of(container(spec, "vmagent"))["CLUSTER"] == "site-7"

    def test_default_time_zone_is_the_nodes(self) -> None:
        sidecar = container(pod_spec(template()), "metric-sidecar")
        assert "TZ" not in env_of(sidecar)
        assert any(m["mountPath"] == "/etc/localtime" for m in sidecar["volumeMounts"])

    def test_centre_elsewhere(self) -> None:
        objects = template(VALUES / "centre-elsewhere.yaml")
        assert not [o for o in objects if o["metadata"]["name"].startswith("central-")]
        vmagent = container(pod_spec(objects), "vmagent")
        assert env_of(vmagent)["REMOTE_WRITE_URL"] == "https://metrics.example.org:8427/api/v1/write"
        assert "-remoteWrite.tlsCAFile=/etc/edge-metrics/centre-ca/ca.crt" in vmagent["args"]
        kinds = sorted(o["kind"] for o in objects if o["metadata"].get("labels", {}).get("release"))
        rules_files = len(list((REPO / "deploy/prometheus/rules").glob("*.yml"))) - len(
            list((REPO / "deploy/prometheus/rules").glob("*.test.yml")))
        assert kinds == ["PodMonitor"] + ["PrometheusRule"] * rules_files  # one for each rules file
        dashboards = [o for o in objects if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        assert len(dashboards) == 3

    def test_centre_placement_and_storage(self) -> None:
        objects = template(VALUES / "vm-operator.yaml")
        deployment = find(objects, "Deployment", "central-prometheus")
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {
            "node-role.kubernetes.io/control-plane": "true"}
        pvc = find(objects, "PersistentVolumeClaim", "central-prometheus-data")
        assert pvc["spec"]["storageClassName"] == "local-ssd"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"

    def test_without_a_centre_the_url_is_required(self) -> None:
        message = refusal(sets=("central.enabled=false",))
        assert "remoteWrite.url" in message


class TestSchemaRefusesBadValues:
    """values.schema.json: a bad value fails at install, with a message naming it."""

    @pytest.mark.parametrize(("setting", "named"), [
        ("nodeExporter.bundled=yes", "/nodeExporter/bundled"),
        ("cluster=", "/cluster"),
        ("nodeSelectr.x=y", "nodeSelectr"),
        ("collector.metricsListen=0.0.0.0:9101", "/collector/metricsListen"),
        ("image.digest=latest", "/image/digest"),
        ("central.storageSize=lots", "/central/storageSize"),
        ("config.files.nodes\\.conf=x,config.files.bad/name=y", "bad/name"),
        ("collector.pushUrl=", "/collector/pushUrl"),
        ("collector.resources.limits.memory=lots", "/collector/resources/limits/memory"),
    ])
    def test_bad_value_is_named(self, setting: str, named: str) -> None:
        message = refusal(sets=(setting,))
        assert "schema" in message and named in message, message


class TestOwnScripts:
    """Your scripts without a fork: the worked example of docs/kubernetes.md, rendered and checked as CI would."""

    @staticmethod
    def docs_example(tmp_path: Path) -> Path:
        blocks = re.findall(r"```yaml\n(# my-values\.yaml\n.*?)```", DOCS.read_text(), re.S)
        assert len(blocks) == 1, "docs/kubernetes.md has one ```yaml block starting `# my-values.yaml`"
        path = tmp_path / "my-values.yaml"
        path.write_text(blocks[0])
        return path

    def test_worked_example_passes_check_configmap(self, tmp_path: Path) -> None:
        values = self.docs_example(tmp_path)
        rendered_file = tmp_path / "rendered.yaml"
        rendered_file.write_text(template_text(values))
        result = subprocess.run([str(EDGE_METRICS), "check", "--configmap", str(rendered_file)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "lab-*: power_rail every 1m" in result.stdout
        objects = load_all(rendered_file.read_text())
        data = find(objects, "ConfigMap", "edge-metrics-config")["data"]
        assert set(data) == {"nodes.conf", "power_rail.sh"}, "the chart's own scripts are not installed with yours"
        spec = pod_spec(objects)
        assert spec["nodeSelector"]["edge-metrics/sensors"] == "true"

    def test_a_broken_script_fails_the_check(self, tmp_path: Path) -> None:
        """The check CI runs catches a script nodes.conf names but the values lack."""
        values = yaml.safe_load(self.docs_example(tmp_path).read_text())
        del values["config"]["files"]["power_rail.sh"]
        broken = tmp_path / "broken.yaml"
        broken.write_text(yaml.safe_dump(values))
        rendered_file = tmp_path / "rendered.yaml"
        rendered_file.write_text(template_text(broken))
        result = subprocess.run([str(EDGE_METRICS), "check", "--configmap", str(rendered_file)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 1 and "power_rail" in result.stderr, result.stderr

    def test_existing_configmap_is_mounted_and_none_rendered(self) -> None:
        objects = template(sets=("config.existingConfigMap=my-scripts",))
        assert not [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "edge-metrics-config"]
        volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == "config")
        assert volume == {"name": "config", "configMap": {"name": "my-scripts"}}
