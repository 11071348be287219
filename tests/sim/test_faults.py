"""Faults the model can inject, seen through the real i2c-tools: NACKs, slow devices, a hung bus, and a
bus that does not exist."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import Processes, wait_until
from tests.sim.support import run, simulator, write_model

pytestmark = pytest.mark.sim


class TestNack:
    def test_device_nacks_some_of_the_time(self, procs: Processes, tmp_path: Path) -> None:
        """nack: 0.5 fails about half the reads with i2cget's read error; the others return the value."""
        model = write_model(tmp_path / "m.yaml", """
            buses:
              0:
                devices:
                  0x40: {nack: 0.5, registers: {0x00: 0x5a}}
        """)
        with simulator(procs, model) as sim:
            result = sim.sh("for i in $(seq 200); do i2cget -f -y 0 0x40 0x00 && echo ok $? || echo failed $?; done"
                            " 2>&1")
        lines = result.lines()
        succeeded = lines.count("0x5a")
        failed = lines.count("Error: Read failed")
        assert lines.count("ok 0") == succeeded and lines.count("failed 2") == failed
        assert succeeded + failed == 200
        assert 50 <= failed <= 150, f"{failed} of 200 reads failed"


class TestSlowDevice:
    def test_each_transfer_takes_the_delay(self, procs: Processes, tmp_path: Path) -> None:
        """delay: 300ms makes each transfer that long; a device without delay on the same bus stays fast."""
        model = write_model(tmp_path / "m.yaml", """
            buses:
              0:
                devices:
                  0x40: {delay: 300ms, registers: {0x00: 0x01}}
                  0x41: {registers: {0x00: 0x02}}
        """)
        with simulator(procs, model) as sim:
            start = time.monotonic()
            slow = sim.run("i2cget", "-f", "-y", "0", "0x40", "0x00")
            middle = time.monotonic()
            fast = sim.run("i2cget", "-f", "-y", "0", "0x41", "0x00")
            end = time.monotonic()
        assert (slow.out, fast.out) == ("0x01\n", "0x02\n")
        assert middle - start >= 0.3
        assert end - middle < 0.3


class TestHungBus:
    def test_transfer_blocks_until_killed_and_nothing_survives(self, procs: Processes, tmp_path: Path) -> None:
        """On a hung bus i2cget never returns; killing it ends it, leaving no process behind."""
        model = write_model(tmp_path / "m.yaml", """
            buses:
              0:
                hung: true
                devices:
                  0x40: {registers: {0x00: 0x01}}
        """)
        with simulator(procs, model) as sim:
            proc = procs.start(["i2cget", "-f", "-y", "0", "0x40", "0x00"], env=sim.env)
            time.sleep(0.5)  # not a readiness wait: the point is that nothing happens in this time
            assert proc.poll() is None, "i2cget returned from a hung bus"
            assert len(sim.processes_left()) == 1
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=5) == -signal.SIGTERM
            wait_until(lambda: not sim.processes_left(), timeout=5, what="no simulated process left")


class TestMissingBus:
    def test_same_error_as_a_machine_without_that_bus(self, procs: Processes, tmp_path: Path) -> None:
        """A bus the model lacks does not exist: i2cget's open error and exit code match real hardware's."""
        if Path("/dev/i2c-7").exists() or Path("/dev/i2c/7").exists():
            pytest.skip("this machine has a real bus 7 to compare against")
        model = write_model(tmp_path / "m.yaml", "buses: {0: {devices: {0x40: {registers: {0x00: 1}}}}}\n")
        with simulator(procs, model) as sim:
            simulated = sim.run("i2cget", "-f", "-y", "7", "0x40", "0x00")
            real_env = {k: v for k, v in sim.env.items() if k != "LD_PRELOAD"}
            real = run(procs, ["i2cget", "-f", "-y", "7", "0x40", "0x00"], env=real_env)
        expected = "Error: Could not open file `/dev/i2c-7' or `/dev/i2c/7': No such file or directory\n"
        assert (simulated.code, simulated.err) == (real.code, real.err) == (1, expected)

    def test_without_a_model_the_library_passes_through(self, procs: Processes, tmp_path: Path) -> None:
        """Preloaded without EDGE_I2C_SIM_MODEL, the library changes nothing: ordinary files still open."""
        model = write_model(tmp_path / "m.yaml", "buses: {0: {devices: {}}}\n")
        with simulator(procs, model) as sim:
            env = {k: v for k, v in sim.env.items() if k != "EDGE_I2C_SIM_MODEL"}
            result = run(procs, ["bash", "-c", "cat /etc/hostname >/dev/null && i2cget -f -y 0 0x40 0x00"], env=env)
        assert result.code == 1 and "/dev/i2c-0" in result.err
