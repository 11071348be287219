"""What the collector accepts from one script, as a user sees it in the file and the log: at most --max-series
series (the first in output order), and only values a double can hold."""

from __future__ import annotations

import math
from pathlib import Path

from tests.helpers import Processes, wait_until
from tests.integration.support import make_setup, read_metrics, run_once, script_value, start_collector, value

DROPPED = "edge_collector_script_series_dropped_total"


class TestSeriesBound:
    def test_first_n_series_are_kept_and_the_rest_counted(self, tmp_path: Path) -> None:
        """--max-series 3 with six series printed: the first three in output order are exported (an update of a
        kept one is still taken), the other lines are counted, and one warning names the bound."""
        setup = make_setup(tmp_path, "node-1=many\n", {"many": """
            echo 'z=1'
            echo 'a{sensor="1"}=2'
            echo 'a{sensor="2"}=3'
            echo 'b=4'
            echo 'z=5'
            echo 'c=6'
            echo 'a{sensor="3"}=7'
            """})
        result = run_once(setup, "--max-series", "3")
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        script_series = {key: v for key, v in samples.items() if not key[0].startswith("edge_collector_")}
        assert script_series == {("edge_z", ()): 5, ("edge_a", (("sensor", "1"),)): 2,
                                 ("edge_a", (("sensor", "2"),)): 3}
        assert value(samples, DROPPED, script="many") == 3
        assert value(samples, "edge_collector_invalid_lines_total", script="many") == 0
        warnings = [line for line in result.stderr.splitlines() if "more series than allowed" in line]
        assert len(warnings) == 1 and "max_series=3" in warnings[0] and "dropped_lines=3" in warnings[0]

    def test_default_bound_in_the_daemon_from_the_environment(self, tmp_path: Path, procs: Processes) -> None:
        """Over several daemon runs with EDGE_MAX_SERIES=100 and 150 series printed: 100 series in the file, the
        counter grows by 50 a run, one warning per run."""
        setup = make_setup(tmp_path, "node-1=many:300ms\n",
                           {"many": 'for i in $(seq 1 150); do echo "reading{n=\\"$i\\"}=$i"; done\n'})
        start_collector(procs, setup, env={"EDGE_MAX_SERIES": "100"})
        wait_until(lambda: (script_value(setup.output, "edge_collector_script_runs_total", "many") or 0) >= 3,
                   timeout=15, what="three runs")
        samples = read_metrics(setup.output)
        kept = sorted(int(dict(labels)["n"]) for name, labels in samples if name == "edge_reading")
        assert kept == list(range(1, 101))
        runs = value(samples, "edge_collector_script_runs_total", script="many") or 0
        assert value(samples, DROPPED, script="many") == 50 * runs
        assert len(setup.log_lines("more series than allowed")) >= runs


class TestOverflow:
    def test_overflowing_values_are_invalid_lines(self, tmp_path: Path) -> None:
        """`1e309` and `-1e400` are rejected as invalid lines with the reason, while `+Inf`, `-Inf` and `NaN`
        stay valid readings."""
        setup = make_setup(tmp_path, "node-1=big\n", {"big": """
            echo huge=1e309
            echo 'tiny{zone="a"}=-1e400'
            echo pos=+Inf
            echo neg=-Inf
            echo nan=NaN
            echo ok=1.5
            """})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert value(samples, "edge_huge") is None and value(samples, "edge_tiny", zone="a") is None
        assert value(samples, "edge_pos") == math.inf and value(samples, "edge_neg") == -math.inf
        assert math.isnan(value(samples, "edge_nan") or 0.0)
        assert value(samples, "edge_ok") == 1.5
        assert value(samples, "edge_collector_invalid_lines_total", script="big") == 2
        invalid = [line for line in result.stderr.splitlines() if "invalid line" in line]
        assert len(invalid) == 2 and all("value out of range" in line for line in invalid), invalid
        assert "line=1" in invalid[0] and "line=2" in invalid[1]
