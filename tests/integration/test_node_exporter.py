"""The real reader: Debian's node_exporter 1.5 textfile collector accepts the collector's file whole."""

from __future__ import annotations

import math
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Processes, components, free_port, wait_until
from tests.integration.support import make_setup, read_metrics, run_once, start_collector

SCRIPTS = {
    "climate": r"""
        echo temperature=45.25
        echo humidity=55
        echo 'sensor_temperature{zone="cpu",chip="hdc1080"}=41.5'
        echo 'sensor_temperature{zone="say \"hi\"",chip="C:\\dir\\"}=-3.5'
        echo 'sensor_temperature{zone="line1\nline2",chip="温度°C"}=1e-3'
        echo not_a_number=NaN
        echo overflow=+Inf
        echo underflow=-Inf
        echo big=12345678901234567890
        exit 3
        """,
    "power": r"""
        echo 'rail_voltage{rail="5v"}=5.02'
        echo 'rail_voltage{rail="3v3"}=3.31'
        echo bad line here
        """,
    # Lines that would make node_exporter drop the whole file if they reached it: another script's series,
    # and a family with other label names than another script gives it.
    "clash": r"""
        echo 'rail_voltage{rail="5v"}=9'
        echo 'humidity{room="a"}=1'
        echo clash_ok=1
        """,
}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def families(text: str) -> dict[str, tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]:
    """name -> (type, {(sample name, labels): value})"""
    result = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): float(s.value) for s in family.samples}
        result[family.name] = (family.type, samples)
    return result


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-12)


class TestNodeExporter:
    def test_every_series_is_exported_with_no_scrape_error(self, tmp_path: Path, procs: Processes) -> None:
        """node_exporter reads the file with node_textfile_scrape_error 0 and exports every family (edge_* and
        edge_collector_*) with its type, every label value intact and every value equal."""
        setup = make_setup(tmp_path, "node-1=climate,power,clash\n", SCRIPTS)
        assert run_once(setup).returncode == 1  # climate exits 3: failed runs are exported too
        ours = families(setup.output.read_text())
        assert {"edge_temperature", "edge_sensor_temperature", "edge_rail_voltage", "edge_clash_ok",
                "edge_collector_info", "edge_collector_script_success", "edge_collector_script_runs"} <= ours.keys()
        samples = read_metrics(setup.output)
        assert samples[("edge_rail_voltage", (("rail", "5v"),))] == 5.02
        assert samples[("edge_collector_invalid_lines_total", (("script", "clash"),))] == 2

        port = free_port()
        procs.start([components()["NODE_EXPORTER_BIN"], "--collector.disable-defaults", "--collector.textfile",
                     f"--collector.textfile.directory={setup.output.parent}",
                     f"--web.listen-address=127.0.0.1:{port}"], log=tmp_path / "node_exporter.log")
        theirs = families(wait_until(lambda: scrape(port), timeout=10, what="node_exporter to serve /metrics"))

        assert theirs["node_textfile_scrape_error"][1] == {("node_textfile_scrape_error", ()): 0.0}
        mtimes = theirs["node_textfile_mtime_seconds"][1]
        assert ("node_textfile_mtime_seconds", (("file", str(setup.output)),)) in mtimes
        for name, (kind, samples) in ours.items():
            assert name in theirs, f"{name} missing from node_exporter's /metrics"
            their_kind, their_samples = theirs[name]
            assert their_kind == kind, name
            assert their_samples.keys() == samples.keys(), name
            for key, mine in samples.items():
                assert same(their_samples[key], mine), (key, their_samples[key], mine)

    def test_the_daemon_file_is_read_while_it_is_rewritten(self, tmp_path: Path, procs: Processes) -> None:
        """With the daemon rewriting the file every 50 ms, 20 scrapes in a row all read it without error."""
        setup = make_setup(tmp_path, "node-1=climate:50ms,power:50ms,clash:50ms\n", SCRIPTS)
        start_collector(procs, setup)
        wait_until(lambda: read_metrics(setup.output).get(("edge_rail_voltage", (("rail", "5v"),))) == 5.02,
                   timeout=5, what="the first runs")
        port = free_port()
        procs.start([components()["NODE_EXPORTER_BIN"], "--collector.disable-defaults", "--collector.textfile",
                     f"--collector.textfile.directory={setup.output.parent}",
                     f"--web.listen-address=127.0.0.1:{port}"], log=tmp_path / "node_exporter.log")
        wait_until(lambda: scrape(port), timeout=10, what="node_exporter to serve /metrics")
        runs = set()
        for _ in range(20):
            theirs = families(scrape(port))
            assert theirs["node_textfile_scrape_error"][1] == {("node_textfile_scrape_error", ()): 0.0}
            runs.add(theirs["edge_collector_script_runs"][1][("edge_collector_script_runs_total",
                                                               (("script", "power"),))])
        assert len(runs) > 1, "the file was not rewritten between scrapes"
