"""The operator objects (PrometheusRule, PodMonitor, VMRule, VMPodScrape): generated from the files the
central Prometheus runs on, and valid for the operators' own CRD schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import REPO
from tests.k8s.manifests import kustomize, load_all

pytestmark = pytest.mark.k8s

GENERATOR = REPO / "deploy" / "operators" / "generate.py"
COMPONENTS = REPO / "deploy" / "kubernetes" / "components"
CRD_DIR = Path(__file__).parent / "crds"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DAEMONSET = REPO / "deploy" / "kubernetes" / "edge" / "daemonset.yaml"

Obj = dict[str, Any]


def crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> the openAPIV3Schema of that CRD version."""
    schemas = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def pruned_fields(value: Any, schema: Obj, path: str = "") -> Iterator[str]:
    """Fields the API server would silently drop: not in the schema's properties (structural schemas
    prune unknown fields instead of rejecting them, so jsonschema alone would let a typo through)."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                yield from pruned_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from pruned_fields(item, extra, f"{path}.{key}")
            elif properties is not None and path and not extra:
                yield f"{path}.{key}"
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from pruned_fields(item, schema["items"], f"{path}[{index}]")


def validate(obj: Obj, schema: Obj) -> None:
    """jsonschema validation with the CRD's OpenAPI v3 schema (the Draft 4 dialect). The schema itself
    is not checked against the metaschema: its patterns are Go regexps (RE2), e.g. `^(?i)...`, which
    Python's re module rejects; they are only compiled if a field that has one is present."""
    jsonschema.Draft4Validator(schema).validate(obj)


def render_component(name: str, tmp_path: Path) -> list[Obj]:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "monitoring",
                "components": [os.path.relpath(COMPONENTS / name, tmp_path)],
            }
        )
    )
    return load_all(kustomize(tmp_path))


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60, check=False
    )


class TestGeneration:
    def test_committed_objects_equal_a_fresh_generation(self) -> None:
        result = generate("--check")
        assert result.returncode == 0, result.stderr

    def test_rules_are_the_rules_files_unchanged(self, tmp_path: Path) -> None:
        """Each rules file Prometheus loads becomes one PrometheusRule and one VMRule with exactly its
        groups, so the operator-run centre alerts as the file-based one does."""
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        files = [path for pattern in config["rule_files"] for path in sorted(PROMETHEUS_DIR.glob(pattern))]
        assert files
        for component, kind in (("prometheus-operator", "PrometheusRule"), ("vm-operator", "VMRule")):
            rules = {
                obj["metadata"]["name"]: obj for obj in render_component(component, tmp_path) if obj["kind"] == kind
            }
            assert sorted(rules) == sorted(path.stem for path in files)
            for path in files:
                assert rules[path.stem]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]
                assert rules[path.stem]["metadata"]["namespace"] == "monitoring"

    @pytest.mark.parametrize(("component", "kind", "relabel"), [
        ("prometheus-operator", "PodMonitor", "relabelings"),
        ("vm-operator", "VMPodScrape", "relabelConfigs"),
    ])  # fmt: skip
    def test_scrape_selects_the_edge_pods_vmagent_port(
        self, tmp_path: Path, component: str, kind: str, relabel: str
    ) -> None:
        """The scrape object finds the DaemonSet's pods and vmagent's port, and labels the samples as the
        file_sd job does (job="vmagent", node=<node name>), which the rules and dashboards select on."""
        (scrape,) = [obj for obj in render_component(component, tmp_path) if obj["kind"] == kind]
        pod = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]
        assert scrape["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (endpoint,) = scrape["spec"]["podMetricsEndpoints"]
        (vmagent,) = [c for c in pod["spec"]["containers"] if c["name"] == "vmagent"]
        assert endpoint["port"] in {port["name"] for port in vmagent["ports"]}
        relabels = endpoint[relabel]
        assert {"action": "replace", "targetLabel": "job", "replacement": "vmagent"} in relabels
        node_label = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())["nodeLabel"]
        node = {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": node_label}
        assert node in relabels

    def test_check_names_a_hand_edit(self, tmp_path: Path) -> None:
        """--check fails on an edited output and on a file it does not generate (on a copy)."""
        for name in ("prometheus-operator", "vm-operator"):
            shutil.copytree(COMPONENTS / name, tmp_path / name)
        edited = tmp_path / "vm-operator" / "vmpodscrape-vmagent.yaml"
        edited.write_text(edited.read_text().replace("interval: 15s", "interval: 1m"))
        stray = tmp_path / "prometheus-operator" / "podmonitor-old.yaml"
        stray.write_text("{}\n")
        result = generate("--check", "--components", str(tmp_path))
        assert result.returncode == 1
        assert f"{edited}: differs" in result.stderr and f"{stray}: not generated" in result.stderr


class TestCrdSchemas:
    @pytest.mark.parametrize("component", ["prometheus-operator", "vm-operator"])
    def test_every_object_validates_against_its_crd(self, tmp_path: Path, component: str) -> None:
        schemas = crd_schemas()
        objects = render_component(component, tmp_path)
        assert len(objects) >= 2
        for obj in objects:
            schema = schemas[(obj["apiVersion"], obj["kind"])]
            validate(obj, schema)
            assert list(pruned_fields(obj, schema)) == [], obj["kind"]

    def test_validation_catches_a_wrong_type_and_an_unknown_field(self) -> None:
        """The checks above can fail: a string where the CRD wants a list, a misspelt field."""
        schemas = crd_schemas()
        rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"}}
        with pytest.raises(jsonschema.ValidationError):
            validate({**rule, "spec": {"groups": "not a list"}}, schemas[(rule["apiVersion"], rule["kind"])])
        monitor = {
            "apiVersion": "operator.victoriametrics.com/v1beta1",
            "kind": "VMPodScrape",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "vmagent", "relabelings": []}]},
        }
        assert list(pruned_fields(monitor, schemas[(monitor["apiVersion"], monitor["kind"])])) == [
            ".spec.podMetricsEndpoints[0].relabelings"
        ]

    def test_not_part_of_the_default_deployment(self) -> None:
        kinds = {obj["kind"] for obj in load_all(kustomize())}
        assert not kinds & {"PrometheusRule", "PodMonitor", "VMRule", "VMPodScrape"}
