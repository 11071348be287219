"""Whatever a script prints, the collector exports its valid lines, reports the rest, and writes a valid file."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.helpers import Processes, parse_exposition, wait_until
from tests.integration.support import (
    LOG_LINE,
    complete_problem,
    make_setup,
    read_metrics,
    run_once,
    start_collector,
    value,
)

MIB = 1 << 20


def log_lines_are_events(stderr: str) -> list[str]:
    """Every stderr line is one log event (a newline in a value must not start a line of its own)."""
    lines = stderr.split("\n")[:-1]
    bad = [line for line in lines if not LOG_LINE.match(line)]
    assert bad == [], f"log lines that are not events: {bad[:3]}"
    return lines


class TestHugeOutput:
    def test_50_mb_is_capped_at_1_mib(self, tmp_path: Path) -> None:
        """50 MB of readings: the whole lines of the first MiB are exported, the rest is discarded with one warning
        and counted; the file stays valid and the run still succeeds."""
        line = 'reading{sensor="%d",chip="hdc1080",bus="i2c-1",where="rack-07-shelf-3"}=%d'
        setup = make_setup(tmp_path, "node-1=flood\n", {"flood": r"""
            awk 'BEGIN { for (i = 0; n < 50 * 1048576; i++) {
                line = sprintf("reading{sensor=\"%d\",chip=\"hdc1080\",bus=\"i2c-1\",where=\"rack-07-shelf-3\"}=%d\n",
                               i, i)
                printf "%s", line; n += length(line) } }'
            """})
        started = time.monotonic()
        # Above the ~13,000 series in 1 MiB: the byte cap is what ends it here, not the series bound.
        result = run_once(setup, "--max-series", "100000", timeout=60)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        log_lines_are_events(result.stderr)
        warnings = [line for line in result.stderr.splitlines() if "exceeded the cap" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0] and f"cap_bytes={MIB}" in warnings[0]

        text = setup.output.read_text()
        problem = complete_problem(text, ["edge_reading"])
        assert problem is None, problem
        samples = parse_exposition(text)
        exported = sorted(int(dict(labels)["sensor"]) for name, labels in samples if name == "edge_reading")
        # Exactly the whole lines that fit in 1 MiB, in order, with their values; nothing after them.
        printed = fitting = 0
        while printed + len(line % (fitting, fitting)) + 1 <= MIB:
            printed += len(line % (fitting, fitting)) + 1
            fitting += 1
        assert exported == list(range(fitting))
        last = dict(sensor=str(fitting - 1), chip="hdc1080", bus="i2c-1", where="rack-07-shelf-3")
        assert value(samples, "edge_reading", **last) == fitting - 1
        assert value(samples, "edge_collector_script_output_truncated_total", script="flood") == 1
        assert value(samples, "edge_collector_script_success", script="flood") == 1
        print(f"50 MB script output: --once took {elapsed:.2f}s, exported {fitting} series")


class TestMalformedOutput:
    def test_binary_garbage(self, tmp_path: Path) -> None:
        """Random bytes around valid lines: the valid lines are exported, the garbage is rejected, counted and
        logged as one-line events, and the file still parses."""
        setup = make_setup(tmp_path, "node-1=noise\n", {"noise": """
            echo before=1
            head -c 65536 /dev/urandom
            printf '\\n\\x00\\x01\\x1b[31m\\xff\\xfe=3\\n'
            printf 'ctl=\\x07\\n'
            echo after=2
            """})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        log_lines_are_events(result.stderr)
        assert "invalid line" in result.stderr
        text = setup.output.read_text()
        assert complete_problem(text) is None, complete_problem(text)
        samples = read_metrics(setup.output)
        script_series = {name for name, _ in samples if not name.startswith("edge_collector_")}
        # Random bytes can spell a valid `key=value` line only by a freak chance; before/after must be there.
        assert {"edge_before", "edge_after"} <= script_series
        assert value(samples, "edge_before") == 1 and value(samples, "edge_after") == 2
        invalid = value(samples, "edge_collector_invalid_lines_total", script="noise")
        assert invalid is not None and invalid >= 2

    def test_partial_output_then_exit_3(self, tmp_path: Path) -> None:
        """A script that prints some readings and then fails: the readings are exported, the run is marked failed
        with its exit code, the failure is logged with stderr, and --once exits 1."""
        setup = make_setup(tmp_path, "node-1=partial\n", {"partial": """
            echo temperature=41.5
            echo humidity=55
            echo "i2cget: read failed" >&2
            exit 3
            """})
        result = run_once(setup)
        assert result.returncode == 1
        samples = read_metrics(setup.output)
        assert value(samples, "edge_temperature") == 41.5
        assert value(samples, "edge_humidity") == 55
        assert value(samples, "edge_collector_script_success", script="partial") == 0
        assert value(samples, "edge_collector_script_exit_code", script="partial") == 3
        assert value(samples, "edge_collector_script_failures_total", script="partial") == 1
        failed = [line for line in result.stderr.splitlines() if "script failed" in line]
        assert len(failed) == 1
        assert "ERROR" in failed[0] and "exit_code=3" in failed[0] and "i2cget: read failed" in failed[0]

    def test_duplicate_keys_last_wins(self, tmp_path: Path) -> None:
        """The same key twice in one run: the last value is exported and the earlier line is warned about."""
        setup = make_setup(tmp_path, "node-1=dup\n", {"dup": """
            echo voltage=1
            echo 'rail{name="5v"}=4.9'
            echo voltage=2
            echo 'rail{name="5v"}=5.1'
            """})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert value(samples, "edge_voltage") == 2
        assert value(samples, "edge_rail", name="5v") == 5.1
        warnings = [line for line in result.stderr.splitlines() if "duplicate series" in line]
        assert len(warnings) == 2 and all(line.split()[1] == "WARNING" for line in warnings)
        assert any(re.search(r"\bline=1\b", line) for line in warnings), warnings


class TestLabelValues:
    def test_quotes_backslashes_newlines_round_trip(self, tmp_path: Path) -> None:
        """Label values escaped by the script as Prometheus does (\\" \\\\ \\n) come out of prometheus_client's
        parser exactly as meant, next to plain and non-ASCII values."""
        setup = make_setup(tmp_path, "node-1=labels\n", {"labels": r"""
            echo 'sensor{quote="say \"hi\"",path="C:\\dir\\",lines="one\ntwo",plain="hdc1080",unicode="温度°C"}=21.5'
            echo 'sensor{quote="",path="\\\\server\\share",lines="\\n is not a newline",plain="x",unicode="y"}=-3'
            """})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        first = dict(quote='say "hi"', path="C:\\dir\\", lines="one\ntwo", plain="hdc1080", unicode="温度°C")
        second = dict(quote="", path="\\\\server\\share", lines="\\n is not a newline", plain="x", unicode="y")
        assert value(samples, "edge_sensor", **first) == 21.5
        assert value(samples, "edge_sensor", **second) == -3
        assert "invalid line" not in result.stderr


class TestFileConsistency:
    def test_reserved_names_and_inconsistent_labels_are_rejected(self, tmp_path: Path) -> None:
        """A key that would shadow a self-metric, or that changes its label names within a family, is rejected
        as an invalid line (node_exporter would otherwise drop the whole file); the rest is exported."""
        setup = make_setup(tmp_path, "node-1=mixed\n", {"mixed": """
            echo collector_script_success=7
            echo 'temperature{zone="cpu"}=40'
            echo temperature=41
            echo 'temperature{zone="gpu",chip="x"}=42'
            echo 'temperature{zone="board"}=43'
            """})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        samples = read_metrics(setup.output)
        assert {k: v for k, v in samples.items() if k[0] == "edge_temperature"} == {
            ("edge_temperature", (("zone", "cpu"),)): 40, ("edge_temperature", (("zone", "board"),)): 43,
        }
        assert value(samples, "edge_collector_script_success", script="mixed") == 1
        assert value(samples, "edge_collector_invalid_lines_total", script="mixed") == 3
        invalid = [line for line in result.stderr.splitlines() if "invalid line" in line]
        assert [re.search(r"\bline=(\d+)", line).group(1) for line in invalid] == ["1", "3", "4"]  # type: ignore[union-attr]


class TestStaleReadings:
    def test_a_key_no_longer_printed_disappears_at_the_next_run(self, tmp_path: Path, procs: Processes) -> None:
        """What a script stopped printing leaves the file at its next run: no stale values carried over."""
        state = tmp_path / "state"
        setup = make_setup(tmp_path, "node-1=flip:200ms\n", {"flip": f"""
            if [ -e {state} ]; then echo 'door{{id="2"}}=0'; else echo 'door{{id="1"}}=1'; echo fan=3; fi
            """})
        start_collector(procs, setup)
        wait_until(lambda: value(read_metrics(setup.output), "edge_fan") == 3, timeout=5, what="the first reading")
        state.touch()
        wait_until(lambda: value(read_metrics(setup.output), "edge_door", id="2") == 0, timeout=5,
                   what="the new reading")
        samples = read_metrics(setup.output)
        assert value(samples, "edge_fan") is None
        assert value(samples, "edge_door", id="1") is None


class TestDeterministicFile:
    def test_same_readings_give_the_same_bytes(self, tmp_path: Path) -> None:
        """Readings printed in any order render the same sorted file (time-dependent series aside), one HELP and
        TYPE per family, no timestamps."""
        setup = make_setup(tmp_path, "node-1=shuffled\n", {"shuffled": """
            printf '%s\\n' 'b=2' 'a{x="2"}=1' 'c=3' 'a{x="1"}=1' 'a{x="10"}=1' | shuf
            """})
        volatile = ("_timestamp_seconds", "_duration_seconds")
        files = []
        for _ in range(3):
            assert run_once(setup).returncode == 0
            files.append([line for line in setup.output.read_text().splitlines()
                          if not any(word in line for word in volatile)])
        assert files[0] == files[1] == files[2]
        names = [line.split()[2] for line in files[0] if line.startswith("# TYPE")]
        assert names == sorted(names) and len(names) == len(set(names))
        samples = [line for line in files[0] if not line.startswith("#")]
        assert all(len(line.split()) == 2 for line in samples), "a sample line carries a timestamp"
        assert [line for line in samples if line.startswith("edge_a{")] == [
            'edge_a{x="1"} 1', 'edge_a{x="10"} 1', 'edge_a{x="2"} 1']
