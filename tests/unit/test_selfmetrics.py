from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge_metrics import __version__
from edge_metrics.merge import script_families
from edge_metrics.render import render
from edge_metrics.samples import Family, Job, Sample, ScriptStats
from edge_metrics.selfmetrics import COLLECTOR_WIDE, INFO, PER_SCRIPT, PREFIX, CollectorHealth, SelfMetrics

REQUIRED = {
    "edge_collector_script_success", "edge_collector_script_exit_code", "edge_collector_script_duration_seconds",
    "edge_collector_script_last_success_timestamp_seconds", "edge_collector_script_interval_seconds",
    "edge_collector_script_runs", "edge_collector_script_failures", "edge_collector_script_timeouts",
    "edge_collector_script_skipped_runs", "edge_collector_invalid_lines", "edge_collector_textfile_write_failures",
    "edge_collector_config_last_reload_successful", "edge_collector_config_last_reload_success_timestamp_seconds",
    "edge_collector_info", "edge_collector_last_write_timestamp_seconds", "edge_collector_config_other_nodes_problems",
}


def self_metric_families(
    jobs: tuple[Job, ...], stats: Mapping[str, ScriptStats], health: CollectorHealth
) -> list[Family]:
    """The self-metrics as families of samples, rendered by `render.render` as any script's: the reference that
    SelfMetrics' precomputed blocks must match."""
    families: list[Family] = []
    for suffix, kind, help_text, value_of in PER_SCRIPT:
        samples = []
        for job in jobs:
            value = value_of(stats[job.script], job)
            if value is not None:
                samples.append(Sample(PREFIX + suffix, (("script", job.script),), value))
        families.append(Family(PREFIX + suffix, help_text, kind, tuple(samples)))
    for suffix, kind, help_text, global_value in COLLECTOR_WIDE:
        value = global_value(health)
        single = (Sample(PREFIX + suffix, (), value),) if value is not None else ()
        families.append(Family(PREFIX + suffix, help_text, kind, single))
    suffix, kind, help_text = INFO
    labels = (("node", health.node), ("version", __version__))
    families.append(Family(PREFIX + suffix, help_text, kind, (Sample(PREFIX + suffix, labels, 1.0),)))
    return families


class TestSelfMetrics:
    def test_every_documented_family_with_its_type(self) -> None:
        """All self-metrics of the contract are present, counters as counters, gauges as gauges."""
        job = Job("space_server", Path("s.sh"), 10.0)
        stats = ScriptStats(runs=3, failures=1, last_success=True, last_exit_code=0, last_duration=0.2,
                            last_success_timestamp=1.7e9)
        health = CollectorHealth(node="bupt-a", write_failures=2, reload_successful=True,
                                 reload_success_timestamp=1.7e9, write_timestamp=1.7e9)
        text = render([], SelfMetrics((job,), "bupt-a").blocks({"space_server": stats}, health))
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert set(families) == REQUIRED | {
            "edge_collector_script_output_truncated",
            "edge_collector_script_processes_killed",
            "edge_collector_script_series_dropped",
        }
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
        stats = {"s": ScriptStats(runs=1, failures=1, last_success=False)}
        text = render([], SelfMetrics((job,), "n").blocks(stats, health))
        assert "edge_collector_script_last_success_timestamp_seconds" not in text
        assert "edge_collector_config_last_reload_success_timestamp_seconds" not in text
        assert "edge_collector_config_last_reload_successful 0" in text
        assert 'edge_collector_script_success{script="s"} 0' in text


class TestPrecomputedSelfMetrics:
    """The daemon's precomputed self-metric blocks render byte for byte what rendering the families renders,
    merged in name order with the scripts' families."""

    def test_same_bytes_as_rendering_the_families(self) -> None:
        jobs = (Job("zeta", Path("z.sh"), 10.0), Job("alpha-2", Path("a.sh"), 0.5), Job("m_1", Path("m.sh"), 60.0))
        stats = {
            "zeta": ScriptStats(runs=7, failures=2, timeouts=1, skipped=3, invalid_lines=4, truncations=1,
                                last_success=False, last_exit_code=137, last_duration=10.000123,
                                last_success_timestamp=1.7e9 + 0.123),
            "alpha-2": ScriptStats(runs=1, last_success=True, last_exit_code=0, last_duration=0.0021,
                                   last_success_timestamp=1764090000.5),
            "m_1": ScriptStats(),  # loaded, never run yet
        }
        # Script families that sort before, between and after the edge_collector_* ones.
        samples = {
            "zeta": (Sample("edge_a", (), 1.0), Sample("edge_collector", (("x", "1"),), 2.5)),
            "alpha-2": (Sample("edge_zz", (("b", "2"), ("a", "1")), -3e20), Sample("edge_collectoq", (), 0.1)),
            "m_1": (),
        }
        for reload_timestamp in (None, 1764000000.25):
            for node in ("bupt-a", 'odd"node\\name'):
                health = CollectorHealth(node=node, write_failures=5, reload_successful=reload_timestamp is not None,
                                         reload_success_timestamp=reload_timestamp, write_timestamp=1764090001.999)
                expected = render([*script_families(samples), *self_metric_families(jobs, stats, health)])
                blocks = SelfMetrics(jobs, node).blocks(stats, health)
                assert render(script_families(samples), blocks) == expected

    def test_no_scripts(self) -> None:
        health = CollectorHealth(node="n", write_failures=0, reload_successful=True,
                                 reload_success_timestamp=1.0, write_timestamp=2.0)
        assert render([], SelfMetrics((), "n").blocks({}, health)) == render(self_metric_families((), {}, health))


class TestSpoolLimit:
    def test_the_spool_limit_is_exported_beside_its_level(self) -> None:
        """In push mode edge_collector_push_spool_max_bytes carries --spool-max-bytes, beside
        edge_collector_push_spooled_bytes, so EdgeSpoolFilling can compare them; the textfile path has no spool
        and exports no limit."""
        from edge_metrics.clock import ClockReading
        from edge_metrics.selfmetrics import PushHealth, push_blocks

        clock = ClockReading(1.7e9, 5.0, True, 0.0, 0.5)
        pushing = PushHealth(True, 7, 2, 70, {}, {}, 1.7e9, clock, 0, 0, spool_max_bytes=64 * 1024 * 1024)
        families = {f.name: f for f in text_string_to_metric_families(render([], push_blocks(pushing)))}
        limit = families["edge_collector_push_spool_max_bytes"]
        assert limit.type == "gauge" and [s.value for s in limit.samples] == [67108864.0]
        assert [s.value for s in families["edge_collector_push_spooled_bytes"].samples] == [70.0]
        textfile = PushHealth(False, 0, 0, 0, {}, {}, None, clock, 0, 0)
        assert "edge_collector_push_spool_max_bytes" not in render([], push_blocks(textfile))
