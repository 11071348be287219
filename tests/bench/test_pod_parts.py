"""The board's bill's pieces that need no pod: the manifest's quantities and periods, and the strace logs the
fsync counts come from."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.pod import fsyncs
from bench.pod.manifest import Intervals, cpu_millicores, memory_mib
from bench.pod.report import Flushes
from tests.k8s.podsim import LocalImage

LOG = """\
101 1796173430.055553 fsync(6</shm/pod/textfile/custom_metrics.prom.tmp.1.e78>) = 0
101 1796173430.055819 fsync(6</shm/pod/textfile>) = 0
101 1796173430.537359 fsync(6</disk/pod/push-spool/0000000000000000.push.tmp.1.52a>) = 0
102 1796173431.000000 execve("/usr/sbin/i2cget", ["i2cget"], 0x7ffd /* 9 vars */) = 0
103 1796173440.847273 fdatasync(9</disk/pod/vmagent-queue/q/0000> <unfinished ...>
103 1796173440.851560 <... fdatasync resumed>) = 0
104 1796173450.100000 fsync(3</var/log/other>) = 0
"""


class TestManifestFigures:
    @pytest.mark.parametrize(("quantity", "mib"), [("32Mi", 32.0), ("1Gi", 1024.0), ("512Ki", 0.5)])
    def test_memory_quantities(self, quantity: str, mib: float) -> None:
        assert memory_mib(quantity) == mib

    def test_a_memory_quantity_without_a_binary_unit_is_refused_by_name(self) -> None:
        with pytest.raises(ValueError, match="'64M'"):
            memory_mib("64M")

    @pytest.mark.parametrize(("quantity", "millicores"), [("20m", 20.0), ("1", 1000.0), (0.5, 500.0)])
    def test_cpu_quantities(self, quantity: str | float, millicores: float) -> None:
        assert cpu_millicores(quantity) == millicores

    def test_the_load_repeats_after_the_least_common_multiple_of_the_periods(self) -> None:
        """10 s script, 15 s heartbeat and scrape, 30 s probes: every job is back in phase after 30 s."""
        assert Intervals((("space_server", 10.0),), 15.0, 15.0, (30.0, 30.0)).hyperperiod() == 30.0
        assert Intervals((("a", 0.5),), 15.0, 20.0, ()).hyperperiod() == 60.0


class TestFsyncLog:
    def test_flushes_are_counted_per_volume_inside_the_window(self, tmp_path: Path) -> None:
        """A call strace split in two (unfinished, resumed) counts once; a file outside every volume is `other`;
        execve lines are programs started, not flushes."""
        log = tmp_path / "1.fsyncs"
        log.write_text(LOG)
        volumes = {"textfile": Path("/shm/pod/textfile"), "push-spool": Path("/disk/pod/push-spool"),
                   "vmagent-queue": Path("/disk/pod/vmagent-queue")}  # fmt: skip
        flushes = fsyncs.read_flushes(log)
        assert fsyncs.by_volume(flushes, volumes, 0, 2e9) == Counter(
            {"textfile": 2, "push-spool": 1, "vmagent-queue": 1, "other": 1}
        )
        assert fsyncs.by_volume(flushes, volumes, 1796173431, 1796173450) == Counter({"vmagent-queue": 1})
        assert fsyncs.execs(log, 0, 2e9) == 1

    def test_flushes_into_memory_volumes_are_shown_apart(self) -> None:
        counts = Flushes({"metric-sidecar": Counter({"textfile": 4, "push-spool": 2}), "vmagent": Counter()})
        assert counts.count(["metric-sidecar"]) == "2 (4)"
        assert counts.count(["metric-sidecar", "vmagent"], 10.0) == "20 (40)"
        assert Flushes(None).count(["vmagent"]) == "not traced"

    def test_strace_goes_below_the_simulator(self, tmp_path: Path) -> None:
        """Under the I2C simulator strace follows its `--`, so the simulator is not part of the container."""
        image = LocalImage(["edge-metrics", "simulate", "--model", "m.yaml", "--", "edge-metrics", "run"], {"A": "1"})
        argv = list(fsyncs.traced(image, tmp_path).entrypoint)
        assert argv[:5] == ["edge-metrics", "simulate", "--model", "m.yaml", "--"]
        assert argv[5:7] == ["sh", "-c"] and "exec strace" in argv[7]
        assert argv[-2:] == ["edge-metrics", "run"]
        plain = list(fsyncs.traced(LocalImage(["vmagent"]), tmp_path).entrypoint)
        assert plain[:2] == ["sh", "-c"] and plain[-1] == "vmagent"
