"""The real `edge-metrics run --once` in both modes: what the textfile holds, the clock metrics, the spool on disk.

No vmagent here (tests/e2e has it): a free port nobody listens on stands for a vmagent that is down.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import free_port
from tests.integration.support import make_setup, read_metrics, run_once, value

SCRIPT = {"sensors": 'echo "temperature{zone=\\"cpu\\"}=45.5"\necho humidity=40\n'}


def write_clock(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class TestTextfilePath:
    def test_readings_in_the_file_with_the_clock_metrics(self, tmp_path: Path) -> None:
        """Without --push-url the file carries the readings, as before, plus the clock as the collector sees it
        and the push families at zero."""
        setup = make_setup(tmp_path, "node-1=sensors:1s\n", SCRIPT)
        clock = write_clock(tmp_path / "clock", "synchronized=0\nesterror_seconds=0.5\nmaxerror_seconds=16\n")
        result = run_once(setup, env={"EDGE_CLOCK_TEST_FILE": str(clock)})
        assert result.returncode == 0, result.stderr
        metrics = read_metrics(setup.output)
        assert value(metrics, "edge_temperature", zone="cpu") == 45.5
        assert value(metrics, "edge_humidity") == 40
        assert value(metrics, "edge_collector_push_enabled") == 0
        assert value(metrics, "edge_collector_clock_synchronized") == 0
        assert value(metrics, "edge_collector_clock_estimated_error_seconds") == 0.5
        assert value(metrics, "edge_collector_clock_max_error_seconds") == 16
        assert value(metrics, "edge_collector_push_samples_total") == 0


class TestPushMode:
    def test_readings_leave_the_file_and_wait_in_the_spool_when_vmagent_is_down(self, tmp_path: Path) -> None:
        """With --push-url the file carries only edge_collector_*; vmagent not answering, the run's readings are
        written to the spool directory (one file, both lines with the run's ms timestamp) and counted."""
        setup = make_setup(tmp_path, "node-1=sensors:1s\n", SCRIPT)
        clock = write_clock(tmp_path / "clock", "synchronized=1\n")
        spool = tmp_path / "spool"
        result = run_once(setup, "--push-url", f"http://127.0.0.1:{free_port()}/api/v1/import/prometheus",
                          "--spool-dir", str(spool), env={"EDGE_CLOCK_TEST_FILE": str(clock)})
        assert result.returncode == 0, result.stderr
        metrics = read_metrics(setup.output)
        assert not [name for name, _ in metrics if not name.startswith("edge_collector_")]
        assert value(metrics, "edge_collector_push_enabled") == 1
        assert value(metrics, "edge_collector_push_spooled_samples") == 2
        assert value(metrics, "edge_collector_push_errors_total", cause="connect") == 1
        files = list(spool.glob("*.push"))
        assert len(files) == 1
        header, *lines = files[0].read_text().splitlines()
        assert header.startswith("EMS1 ")  # the frame: timestamp, boot, samples, length, checksum (spool.py)
        assert [line.rsplit(" ", 1)[0] for line in lines] == ['edge_temperature{zone="cpu"} 45.5', 'edge_humidity 40']
        stamps = {line.rsplit(" ", 1)[1] for line in lines}
        assert len(stamps) == 1 and len(stamps.pop()) == 13
        assert "cannot push readings; kept in the spool" in result.stderr

    def test_unsynchronised_clock_holds_readings_in_the_spool_across_the_exit(self, tmp_path: Path) -> None:
        """A one-off run with an unsynchronised clock sends nothing; its held readings are on disk with their boot
        time for the next start (issue 17: they used to be lost). Without --spool-dir they are lost, said and
        counted."""
        setup = make_setup(tmp_path, "node-1=sensors:1s\n", SCRIPT)
        clock = write_clock(tmp_path / "clock", "synchronized=0\n")
        url = f"http://127.0.0.1:{free_port()}/x"
        result = run_once(setup, "--push-url", url, "--spool-dir", str(tmp_path / "spool"),
                          env={"EDGE_CLOCK_TEST_FILE": str(clock)})
        assert result.returncode == 0, result.stderr
        assert "readings kept in the spool for the next start samples=2 held=2" in result.stderr
        files = list((tmp_path / "spool").glob("*.push"))
        assert len(files) == 1 and files[0].read_text().startswith("EMS1 0 ")  # timestamp 0: held
        assert value(read_metrics(setup.output), "edge_collector_clock_held_samples") == 2

        result = run_once(setup, "--push-url", url, env={"EDGE_CLOCK_TEST_FILE": str(clock)})
        assert "readings not pushed are lost with this collector samples=2 held=2" in result.stderr
        assert value(read_metrics(setup.output), "edge_collector_push_dropped_samples_total",
                     reason="unsaved_at_exit") == 2
