"""Every panel query of the generated dashboards returns data from the real pipeline.

The collector runs the bundled space_server script against simulated I2C sensors, node_exporter and
vmagent ship its readings to the central Prometheus 3.5, and each query of deploy/grafana/dashboards/
is run there with Grafana's variables filled in. A query that returns nothing, or that reads a metric
no component exports, fails: such a panel would show "No data" forever.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.paths import CLUSTER, EDGE_METRICS
from testbed.pipeline import Pipeline
from testbed.push import push_url
from tests.grafana.dashboards import (
    DASHBOARD_FILES,
    GRAFANA_DIR,
    GRAFANA_VARIABLES,
    Target,
    all_targets,
    load,
    substitute,
)
from tests.helpers import REPO, SIM_LIB, processes, wait_until
from tests.vmagent_keep import USED

pytestmark = pytest.mark.e2e

NODE = "bupt-a"  # the bundled nodes.conf runs space_server on this node
MODEL = REPO / "scripts" / "models" / "space_server.yaml"


def selectors(ast: Any) -> Iterator[list[dict[str, str]]]:
    """The label matchers of every vector and range selector in a parsed query (Prometheus' AST)."""
    if isinstance(ast, dict):
        if "matchers" in ast:
            yield ast["matchers"]
        for value in ast.values():
            yield from selectors(value)
    elif isinstance(ast, list):
        for item in ast:
            yield from selectors(item)


def selector_text(matchers: list[dict[str, str]]) -> str:
    return "{" + ", ".join(f"{m['name']}{m['type']}{json.dumps(m['value'])}" for m in matchers) + "}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The whole pipeline with a few minutes' worth of every kind of series in it, shared by the tests
    of this module (starting it is the slow part)."""
    assert SIM_LIB.exists(), "run `make sim` first (make test does)"
    workdir = tmp_path_factory.mktemp("dashboards")
    # The bundled space_server, two scripts of the sensor catalogue (the panels of temperature, humidity and
    # pressure show theirs), and a script that always fails (exit 3) so the failure panels have something to show.
    scripts = workdir / "scripts"
    scripts.mkdir()
    shutil.copy(REPO / "scripts" / "space_server.sh", scripts)
    for sensor in ("bme280", "sht3x"):
        shutil.copy(REPO / "scripts" / "sensors" / f"{sensor}.sh", scripts)
    (scripts / "broken.sh").write_text("#!/bin/bash\necho door_open=1\nexit 3\n")
    config = scripts / "nodes.conf"
    config.write_text(f"{NODE}=space_server:2s,bme280:2s,sht3x:2s,broken:2s\n")
    model = yaml.safe_load(MODEL.read_text())
    model["buses"][1] = {"devices": {0x76: {"chip": "bme280"}, 0x44: {"chip": "sht3x"}}}
    (workdir / "model.yaml").write_text(yaml.safe_dump(model))
    with processes() as procs:
        pipeline = Pipeline(procs, workdir, node=NODE)
        pipeline.start_infrastructure()
        # Push mode, as the DaemonSet runs it: the push panels have their series too. This machine's clock
        # may not report itself synchronised, so the collector is told to trust it.
        pipeline.node.start_collector(
            config=config,
            wrapper=[str(EDGE_METRICS), "simulate", "--model", str(workdir / "model.yaml"), "--"],
            extra_args=["--push-url", push_url(pipeline.node), "--clock-check", "none"],
        )
        central = pipeline.central
        # Data for every kind of query: readings at the centre, and several samples of each script's,
        # vmagent's and the centre's own counters inside the 1 m rate window.
        for query in (
            f'edge_temperature{{node="{NODE}"}}',
            f'edge_pressure_pascals{{node="{NODE}"}}',
            f'count_over_time(edge_collector_script_runs_total{{node="{NODE}", script="broken"}}[1m]) > 3',
            f'count_over_time(edge_collector_script_runs_total{{node="{NODE}", script="space_server"}}[1m]) > 3',
            f'count_over_time(vmagent_remotewrite_bytes_sent_total{{node="{NODE}"}}[1m]) > 5',
            'count_over_time(prometheus_tsdb_head_samples_appended_total{job="prometheus"}[1m]) > 5',
        ):
            wait_until(lambda query=query: central.query(query), timeout=120, interval=1, what=query)
        yield pipeline


VARIABLES = {"node": NODE, "datasource": "prometheus", **GRAFANA_VARIABLES}


def target_id(target: Target) -> str:
    return f"{target.dashboard}:{target.panel}:{target.ref}"


@pytest.mark.parametrize("target", all_targets(), ids=target_id)
def test_panel_query_returns_series(stack: Pipeline, target: Target) -> None:
    """The query returns at least one series, and each metric it reads exists at the centre (so a
    fallback like `or vector(0)` cannot hide a misspelt metric)."""
    expr = substitute(target.expr, VARIABLES)
    central = stack.central
    parsed = central.api("parse_query", query=expr)
    for matchers in selectors(parsed):
        found = central.query(selector_text(matchers))
        assert found, f"{target_id(target)}: {selector_text(matchers)} matches no series at the centre"
    assert central.query(expr), f"{target_id(target)}: {expr} returns no series"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_template_variables_list_the_node(stack: Pipeline, path: Path) -> None:
    """Each `label_values(selector, label)` variable offers the running node, as Grafana would ask."""
    for variable in load(path)["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        assert query.startswith("label_values(") and query.endswith(")"), query
        selector, _, label = query[len("label_values(") : -1].rpartition(", ")
        params = urllib.parse.urlencode({"match[]": selector})
        body = json.loads(stack.central.get(f"/api/v1/label/{label}/values?{params}"))
        assert NODE in body["data"], (variable["name"], body)


def value_of(stack: Pipeline, dashboard: str, panel: str, ref: str = "A") -> dict[str, float]:
    """A panel query's result now, as {label values joined by ",": value}."""
    (target,) = [t for t in all_targets() if (t.dashboard, t.panel, t.ref) == (dashboard, panel, ref)]
    result = stack.central.query(substitute(target.expr, VARIABLES))
    return {",".join(item["metric"].values()): float(item["value"][1]) for item in result}


def test_a_failing_script_shows_where_a_user_looks(stack: Pipeline) -> None:
    """The script that exits 3 is counted on the fleet overview and named in the node's script
    table, next to the healthy one."""
    assert value_of(stack, "edge-fleet.json", "Nodes with failing scripts") == {"": 1}
    assert value_of(stack, "edge-fleet.json", "Nodes", "B") == {NODE: 1}  # the table's failing scripts
    healthy = {"space_server": 1, "bme280": 1, "sht3x": 1}
    assert value_of(stack, "edge-node.json", "Scripts", "A") == {"broken": 0, **healthy}  # last run
    assert value_of(stack, "edge-node.json", "Scripts", "B") == {"broken": 3, **dict.fromkeys(healthy, 0)}  # exit
    assert value_of(stack, "edge-node.json", "Config") == {"": 1}


def test_pictures_render_every_panel_with_data(stack: Pipeline, tmp_path: Path) -> None:
    """deploy/grafana/render.py draws one PNG per dashboard from the live centre; a panel it finds
    empty reads only metrics that are not exported yet."""
    result = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "render.py"), "--prometheus", stack.central.url, "--node", NODE,
         "--ca-file", str(stack.pki.ca), "--password-file", str(stack.pki.dir / "admin.password"),
         "--out", str(tmp_path), "--range", "300"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for path in DASHBOARD_FILES:
        assert (tmp_path / f"{path.stem}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    empty = [line for line in result.stdout.splitlines() if "without data: " in line]
    assert empty == [], empty


def test_vmagent_self_scrape_sends_only_what_is_read(stack: Pipeline) -> None:
    """The node's vmagent pushes its own health through the keep rule of scrape.yml: every family the rules,
    dashboards and runbooks read arrives, with its `up`, and a small fraction of what its /metrics serves.
    The pushed series carry the cluster label (-remoteWrite.label) and the self-scrape's instance; the centre's
    own pull of the same vmagent (targets/vmagent-*.json, cluster too) has its own, and recording rules' outputs
    (edge:...) are left out."""
    pushed = f'job="vmagent", node="{NODE}", cluster="{CLUSTER}", instance="{stack.node.vmagent_address}"'
    central = stack.central
    for family in [*sorted(USED), "up"]:
        assert central.query(f"{family}{{{pushed}}}"), f"{family} of the self-scrape is not at the centre"
    (count,) = central.query(f'count({{{pushed}, __name__!~".*:.*"}})')
    sent = int(count["value"][1])
    served = len(stack.node.vmagent_metrics())  # what the self-scrape would send without the rule
    assert sent < 60 and sent * 10 < served, (sent, served)
