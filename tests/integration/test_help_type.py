"""Self-describing readings: a script's `# HELP` and `# TYPE` lines reach the real readers, on both paths.

Textfile path: Debian's node_exporter serves the collector's file with the declared help and type. Push path:
the real vmagent takes the lines on /api/v1/import/prometheus and forwards them as remote-write metadata,
which a VictoriaMetrics centre stores (its /api/v1/metadata); Prometheus 3.5's remote-write receiver keeps the
samples and drops the metadata (docs/sensors.md says what the centre sees).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Processes, components, free_port, wait_until, write_script
from tests.integration.support import make_setup, run_once, start_collector

CLIMATE = r"""
    echo '# HELP temperature_celsius Air temperature in degrees Celsius (°C).'
    echo '# TYPE temperature_celsius gauge'
    echo 'temperature_celsius{sensor="bme280"}=21.5'
    echo '# HELP reads_total Sensor reads since the board booted.'
    echo '# TYPE reads_total counter'
    echo 'reads_total=42'
    echo '# TYPE broken histogram'
    echo 'broken=1'
    echo '# an ordinary comment'
    echo plain=3
    """
# Exports the same family with another TYPE: refused, or node_exporter would see two types for one family.
OTHER = r"""
    echo '# TYPE temperature_celsius counter'
    echo 'temperature_celsius{sensor="tmp102"}=20'
    echo other_ok=1
    """


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text


def described(text: str) -> dict[str, tuple[str, str]]:
    return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}


class TestTextfile:
    def test_node_exporter_serves_declared_help_and_type(self, tmp_path: Path, procs: Processes) -> None:
        """node_exporter reads the file whole (scrape error 0) and serves the declared HELP and TYPE; the bad TYPE
        line and the other script's conflicting TYPE are logged with script, line and reason."""
        setup = make_setup(tmp_path, "node-1=climate,other\n", {"climate": CLIMATE, "other": OTHER})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        assert "line=7 reason=\"TYPE 'histogram' for 'broken' is not supported (gauge or counter)\"" in result.stderr
        assert "script=other reason=\"TYPE counter differs from the gauge script 'climate' declares\"" in result.stderr
        port = free_port()
        procs.start([components()["NODE_EXPORTER_BIN"], "--collector.disable-defaults", "--collector.textfile",
                     f"--collector.textfile.directory={setup.output.parent}",
                     f"--web.listen-address=127.0.0.1:{port}"], log=tmp_path / "node_exporter.log")
        text = wait_until(lambda: get(f"http://127.0.0.1:{port}/metrics"), timeout=10, what="node_exporter")
        assert "node_textfile_scrape_error 0" in text
        families = described(text)
        assert families["edge_temperature_celsius"] == ("gauge", "Air temperature in degrees Celsius (°C).")
        assert families["edge_reads"] == ("counter", "Sensor reads since the board booted.")
        assert families["edge_plain"] == ("gauge", "Reading printed by collector script climate.")
        assert families["edge_broken"][0] == "gauge"
        assert 'edge_temperature_celsius{sensor="tmp102"}' not in text
        assert "edge_other_ok 1" in text

    def test_a_type_change_between_runs_is_warned(self, tmp_path: Path, procs: Processes) -> None:
        """A key that was a gauge and is declared a counter on a later run: exported as declared, one warning."""
        setup = make_setup(tmp_path, "node-1=flip:200ms\n", {})
        state = tmp_path / "runs"
        write_script(setup.conf_dir, "flip", f"""
            n=$(( $(cat {state} 2>/dev/null || echo 0) + 1 )); echo $n > {state}
            ((n >= 2)) && echo '# TYPE events_total counter'
            echo events_total=$n
            """)
        start_collector(procs, setup)
        line = wait_until(lambda: setup.log_lines("TYPE changed between runs"), timeout=20, what="the warning")[0]
        assert "WARNING" in line and "script=flip metric=edge_events_total was=gauge now=counter" in line
        wait_until(lambda: "# TYPE edge_events_total counter" in setup.output.read_text(), timeout=10,
                   what="the counter in the file")
        assert len(setup.log_lines("TYPE changed between runs")) == 1


class TestPush:
    def test_vmagent_forwards_help_and_type_to_the_centre(self, tmp_path: Path, procs: Processes) -> None:
        """Pushed readings carry their HELP and TYPE: vmagent counts them as metadata, skips no line, and a
        VictoriaMetrics centre serves them on /api/v1/metadata; the reading's value arrives as printed."""
        bins = components()
        store_port, agent_port = free_port(), free_port()
        procs.start([bins["VICTORIA_METRICS_BIN"], f"-httpListenAddr=127.0.0.1:{store_port}",
                     f"-storageDataPath={tmp_path / 'store'}"], log=tmp_path / "victoria-metrics.log")
        procs.start([bins["VMAGENT_BIN"], f"-httpListenAddr=127.0.0.1:{agent_port}",
                     f"-remoteWrite.url=http://127.0.0.1:{store_port}/api/v1/write",
                     f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}", "-remoteWrite.flushInterval=200ms"],
                    log=tmp_path / "vmagent.log")
        wait_until(lambda: get(f"http://127.0.0.1:{agent_port}/health"), timeout=20, what="vmagent")
        setup = make_setup(tmp_path / "edge", "node-1=climate:1s\n", {"climate": CLIMATE})
        start_collector(procs, setup, "--push-url", f"http://127.0.0.1:{agent_port}/api/v1/import/prometheus",
                        "--clock-check", "none")

        def metadata() -> dict[str, Any] | None:
            data: dict[str, Any] = json.loads(get(f"http://127.0.0.1:{store_port}/api/v1/metadata"))["data"]
            return data if "edge_reads_total" in data else None

        found = wait_until(metadata, timeout=30, interval=0.5, what="the metadata at the centre")
        assert found["edge_reads_total"] == [{"type": "counter", "help": "Sensor reads since the board booted."}]
        assert found["edge_temperature_celsius"] == [
            {"type": "gauge", "help": "Air temperature in degrees Celsius (°C)."}]
        query = f"http://127.0.0.1:{store_port}/api/v1/query?query=edge_reads_total"
        value = wait_until(lambda: json.loads(get(query))["data"]["result"], timeout=30, what="the reading")
        assert value[0]["value"][1] == "42"
        agent = get(f"http://127.0.0.1:{agent_port}/metrics")
        assert 'vm_rows_invalid_total{type="prometheus"} 0' in agent
        inserted = [line for line in agent.splitlines()
                    if line.startswith('vmagent_metadata_inserted_total{type="prometheus"}')]
        assert inserted and float(inserted[0].split()[-1]) > 0
