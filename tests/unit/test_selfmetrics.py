from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge_metrics.render import render
from edge_metrics.samples import Job, ScriptStats
from edge_metrics.selfmetrics import CollectorHealth, self_metric_families

REQUIRED = {
    "edge_collector_script_success", "edge_collector_script_exit_code", "edge_collector_script_duration_seconds",
    "edge_collector_script_last_success_timestamp_seconds", "edge_collector_script_interval_seconds",
    "edge_collector_script_runs", "edge_collector_script_failures", "edge_collector_script_timeouts",
    "edge_collector_script_skipped_runs", "edge_collector_invalid_lines", "edge_collector_textfile_write_failures",
    "edge_collector_config_last_reload_successful", "edge_collector_config_last_reload_success_timestamp_seconds",
    "edge_collector_info", "edge_collector_last_write_timestamp_seconds",
}


class TestSelfMetrics:
    def test_every_documented_family_with_its_type(self) -> None:
        """All self-metrics of the contract are present, counters as counters, gauges as gauges."""
        job = Job("space_server", Path("s.sh"), 10.0)
        stats = ScriptStats(runs=3, failures=1, last_success=True, last_exit_code=0, last_duration=0.2,
                            last_success_timestamp=1.7e9)
        health = CollectorHealth(node="bupt-a", write_failures=2, reload_successful=True,
                                 reload_success_timestamp=1.7e9, write_timestamp=1.7e9)
        text = render(self_metric_families((job,), {"space_server": stats}, health))
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert set(families) == REQUIRED | {"edge_collector_script_output_truncated"}
        assert families["edge_collector_script_runs"].type == "counter"
        assert families["edge_collector_script_success"].type == "gauge"
        assert 'edge_collector_script_runs_total{script="space_server"} 3' in text
        assert 'edge_collector_info{node="bupt-a",version="0.1.0"} 1' in text
        assert "edge_collector_textfile_write_failures_total 2" in text

    def test_no_success_timestamp_before_a_success(self) -> None:
        """Freshness only from success: no last-success sample for a script that never succeeded."""
        job = Job("s", Path("s.sh"), 10.0)
        health = CollectorHealth(node="n", write_failures=0, reload_successful=False,
                                 reload_success_timestamp=None, write_timestamp=1.0)
        text = render(self_metric_families((job,), {"s": ScriptStats(runs=1, failures=1, last_success=False)}, health))
        assert "edge_collector_script_last_success_timestamp_seconds" not in text
        assert "edge_collector_config_last_reload_success_timestamp_seconds" not in text
        assert "edge_collector_config_last_reload_successful 0" in text
        assert 'edge_collector_script_success{script="s"} 0' in text
