"""The committed Grafana dashboards: generated, never hand-edited, valid for Grafana's schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from tests.grafana.dashboards import (
    DASHBOARD_FILES,
    GENERATOR,
    GRAFANA_VARIABLES,
    all_targets,
    load,
    panels,
    substitute,
)
from tests.helpers import REPO, components

# A matcher or grouping on a label called `node` (not $node, edge_node, node-exporter).
BARE_NODE_LABEL = re.compile(r"(?<![\w$])node\s*(?:[=!]~?|[,)])")
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
MIXIN_CONFIG = REPO / "deploy" / "mixin" / "config.yaml"
EXPECTED = {"edge-fleet.json": "edge-fleet", "edge-node.json": "edge-node", "edge-pipeline.json": "edge-pipeline"}


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=120, check=False
    )


class TestGeneration:
    def test_committed_json_equals_a_fresh_generation(self) -> None:
        """`generate.py --check` finds every committed file byte for byte as the generator writes it."""
        result = generate("--check")
        assert result.returncode == 0, result.stderr

    def test_check_names_a_changed_and_an_unknown_file(self, tmp_path: Path) -> None:
        """A hand edit or a stray file makes --check fail and name the file, so CI catches it."""
        out = tmp_path / "dashboards"
        shutil.copytree(DASHBOARD_FILES[0].parent, out)
        edited = out / "edge-node.json"
        edited.write_text(edited.read_text().replace('"Readings"', '"Readings!"', 1))
        (out / "hand-made.json").write_text("{}\n")
        result = generate("--check", "--out", str(out))
        assert result.returncode == 1
        assert f"{edited}: differs from a fresh generation" in result.stderr
        assert "hand-made.json: not generated" in result.stderr

    def test_regenerate_writes_the_committed_bytes(self, tmp_path: Path) -> None:
        result = generate("--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
        for path in DASHBOARD_FILES:
            assert (tmp_path / path.name).read_bytes() == path.read_bytes()


@pytest.fixture(scope="module", autouse=True)
def _sdk_plugins() -> None:
    # The SDK decodes panel options and queries through plugin registries it does not fill by itself.
    plugins.register_default_plugins()


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
class TestGrafanaSchema:
    def test_round_trips_through_the_sdk_models(self, path: Path) -> None:
        """Decoding with the SDK's Dashboard model and encoding again gives the same JSON: no field is
        unknown to Grafana's schema (it would be dropped) and none is missing (a default would appear)."""
        data = load(path)
        decoded = dashboard_model.Dashboard.from_json(data)
        again = json.loads(json.dumps(decoded, cls=JSONEncoder))
        assert again == data

    def test_panels_and_queries_decode_to_typed_models(self, path: Path) -> None:
        """Every panel's options decode into its plugin's options model and every query into the
        Prometheus query model, i.e. the SDK knows the panel type and the datasource."""
        decoded = dashboard_model.Dashboard.from_json(load(path))
        assert decoded.schema_version == dashboard_model.Dashboard().schema_version
        found = 0
        for panel in decoded.panels or []:
            if isinstance(panel, dashboard_model.RowPanel):
                continue
            found += 1
            assert not isinstance(panel.options, dict), f"{panel.title}: options of unknown panel type {panel.type_val}"
            for target in panel.targets or []:
                assert not isinstance(target, UnknownDataquery), f"{panel.title}: query of unknown datasource"
                assert isinstance(target, prometheus_model.Dataquery)
        assert found >= 5

    def test_every_panel_has_unit_thresholds_legend_and_description(self, path: Path) -> None:
        data = load(path)
        for panel in panels(data):
            defaults = panel["fieldConfig"]["defaults"]
            if panel["type"] != "table":  # a table's units and thresholds are per column (overrides)
                assert defaults.get("unit"), panel["title"]
            assert defaults["thresholds"]["steps"], panel["title"]
            assert panel.get("description"), panel["title"]
            for target in panel["targets"]:
                assert target.get("legendFormat"), f"{panel['title']} {target['refId']}"
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for panel in panels(data):
            if panel["type"] == "table":
                for override in panel["fieldConfig"]["overrides"]:
                    ids = {prop["id"] for prop in override["properties"]}
                    assert ids & {"unit", "links"}, override

    def test_identity_ids_and_variables(self, path: Path) -> None:
        """The uid is the contract links use; panel ids are unique; every variable a query uses exists."""
        data = load(path)
        assert data["uid"] == EXPECTED[path.name]
        ids = [panel["id"] for panel in data["panels"]] + [
            p["id"] for row in data["panels"] for p in row.get("panels", [])
        ]
        assert len(ids) == len(set(ids))
        defined = {variable["name"] for variable in data["templating"]["list"]}
        assert "datasource" in defined
        for target in all_targets():
            if target.dashboard == path.name:
                substitute(target.expr, dict.fromkeys(defined | set(GRAFANA_VARIABLES), "x"))


def test_node_detail_has_a_node_variable() -> None:
    node = load(DASHBOARD_FILES[0].parent / "edge-node.json")
    (variable,) = [v for v in node["templating"]["list"] if v["name"] == "node"]
    assert variable["type"] == "query" and not variable["multi"]
    assert "label_values(edge_collector_info" in variable["query"]["query"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool accepts every panel query (as a recording rule), variables substituted as Grafana does."""
    values = {"node": "n", "cluster": "c", **GRAFANA_VARIABLES}
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query:{index}", "expr": substitute(target.expr, values)}
                    for index, target in enumerate(all_targets())
                ],
            }
        ]
    }
    rules_file = tmp_path / "queries.yml"
    rules_file.write_text(json.dumps(rules))
    result = subprocess.run(
        [components()["PROMTOOL_BIN"], "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class TestMixinConfig:
    def test_multi_cluster_adds_the_variable_and_filters_every_selector(self, tmp_path: Path) -> None:
        """showMultiCluster: every dashboard gets a `cluster` variable and every query's selectors
        filter on the configured cluster label; the node label name is the configured one too."""
        config = yaml.safe_load(MIXIN_CONFIG.read_text())
        config.update(showMultiCluster=True, clusterLabel="k8s_cluster", nodeLabel="edge_node")
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        out = tmp_path / "out"
        result = generate("--config", str(path), "--out", str(out))
        assert result.returncode == 0, result.stderr
        for dashboard in sorted(out.glob("*.json")):
            data = load(dashboard)
            assert "cluster" in {v["name"] for v in data["templating"]["list"]}
            for panel in panels(data):
                for target in panel["targets"]:
                    assert 'k8s_cluster=~"$cluster"' in target["expr"], (panel["title"], target["expr"])
                    assert not BARE_NODE_LABEL.search(target["expr"]), target["expr"]
                    # Aggregations and joins by node keep the cluster: one node name may recur in two
                    # clusters, and they must not be summed together.
                    for clause in GROUPING.findall(target["expr"]):
                        if "edge_node" in clause:
                            assert "k8s_cluster" in clause, (panel["title"], target["expr"])
                    if "edge_node" in target.get("legendFormat", ""):
                        assert "{{k8s_cluster}}" in target["legendFormat"], (panel["title"], target["legendFormat"])
        fleet = json.dumps(load(out / "edge-fleet.json"))
        assert "var-cluster=${__data.fields.k8s_cluster}" in fleet  # a table row opens its own cluster's node

    def test_unknown_key_is_an_error_naming_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(MIXIN_CONFIG.read_text().replace("nodeLabel:", "nodelabel:"))
        result = generate("--config", str(path), "--out", str(tmp_path / "out"))
        assert result.returncode != 0
        assert f"{path}: unknown keys ['nodelabel'], missing keys ['nodeLabel']" in result.stderr
