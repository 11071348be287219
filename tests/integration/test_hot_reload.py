"""Config changes apply without a restart: kubelet `..data` swaps of a ConfigMap volume, invalid updates, SIGHUP."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.helpers import Processes, wait_until, write_script
from tests.integration.support import ConfigMapVolume, Setup, read_metrics, start_collector, value


def current(setup: Setup, name: str, **labels: str) -> float | None:
    return value(read_metrics(setup.output), name, **labels)


def wait_for(setup: Setup, name: str, expected: float | None, *, timeout: float = 5, **labels: str) -> None:
    wait_until(lambda: current(setup, name, **labels) == expected, timeout=timeout,
               what=f"{name}{labels} == {expected}")


class TestConfigMapSwap:
    def test_data_symlink_swaps_valid_invalid_and_fixed(self, tmp_path: Path, procs: Processes) -> None:
        """Each `..data` swap is picked up without a restart: a changed script and a new script run; an invalid
        update is rejected with `nodes.conf:LINE: reason` errors while the last good config keeps running and
        edge_collector_config_last_reload_successful is 0; a fixed update applies and drops what is gone."""
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish("node-1=alpha:200ms\n", {"alpha": "echo alpha=1\n"})
        collector = start_collector(procs, setup)
        wait_for(setup, "edge_alpha", 1)
        assert current(setup, "edge_collector_config_last_reload_successful") == 1

        # A changed script and a new one.
        volume.publish("node-1=alpha:200ms,beta:300ms\n", {"alpha": "echo alpha=2\n", "beta": "echo beta=5\n"})
        wait_for(setup, "edge_alpha", 2)
        wait_for(setup, "edge_beta", 5)
        wait_for(setup, "edge_collector_config_last_reload_successful", 1)
        assert current(setup, "edge_collector_script_interval_seconds", script="beta") == 0.3
        assert setup.log_lines("scripts=alpha:200ms,beta:300ms")
        assert not setup.log_lines("config rejected"), "a valid update was rejected while the kubelet linked keys"

        # An invalid update: rejected, the last good plan keeps running.
        volume.publish(
            "node-1=alpha:200ms,beta:300ms\nnode-1=gamma\nedge-*=../../bin/sh:10s\nlab-3=beta:soon\n",
            {"alpha": "echo alpha=2\n", "beta": "echo beta=5\n"},
        )
        good_at = current(setup, "edge_collector_config_last_reload_success_timestamp_seconds")
        wait_for(setup, "edge_collector_config_last_reload_successful", 0)
        config = setup.config
        assert setup.log_lines(f"{config}:2: duplicate entry for node 'node-1'")
        assert setup.log_lines(f"{config}:3: invalid script name")
        assert setup.log_lines(f"{config}:4: script 'beta':")
        assert all("ERROR" in line for line in setup.log_lines(f"{config}:"))
        runs = current(setup, "edge_collector_script_runs_total", script="beta") or 0
        wait_until(lambda: (current(setup, "edge_collector_script_runs_total", script="beta") or 0) >= runs + 3,
                   timeout=5, what="the last good config to keep running")
        assert current(setup, "edge_alpha") == 2 and current(setup, "edge_beta") == 5
        assert current(setup, "edge_collector_config_last_reload_successful") == 0
        assert current(setup, "edge_collector_config_last_reload_success_timestamp_seconds") == good_at

        # Fixed: alpha is gone from the plan, so its readings and self-metrics leave the file.
        volume.publish("node-1=beta:300ms\n", {"beta": "echo beta=6\n"})
        wait_for(setup, "edge_beta", 6)
        wait_for(setup, "edge_collector_config_last_reload_successful", 1)
        wait_for(setup, "edge_alpha", None)
        reloaded_at = current(setup, "edge_collector_config_last_reload_success_timestamp_seconds")
        assert good_at is not None and reloaded_at is not None and reloaded_at > good_at
        assert current(setup, "edge_collector_script_runs_total", script="alpha") is None
        assert not (setup.conf_dir / "alpha.sh").exists()
        # alpha (every 200 ms) was due many times before the next 1 s poll: the config is checked before each run,
        # so the removed script never ran against its deleted file.
        assert not setup.log_lines("script=alpha exit_code=127"), setup.log_lines("script failed")
        assert collector.poll() is None


class TestSighup:
    def test_sighup_reloads_a_change_the_watcher_cannot_see(self, tmp_path: Path, procs: Processes) -> None:
        """nodes.conf rewritten in place with the same size and mtime goes unnoticed by the watcher; SIGHUP
        reloads it."""
        setup = Setup(root=tmp_path)
        setup.conf_dir.mkdir()
        write_script(setup.conf_dir, "aaa", "echo first=1\n")
        write_script(setup.conf_dir, "bbb", "echo second=2\n")
        setup.config.write_text("node-1=aaa:200ms\n")
        collector = start_collector(procs, setup)
        wait_for(setup, "edge_first", 1)

        before = setup.config.stat()
        with open(setup.config, "r+") as handle:  # same inode, same size
            handle.write("node-1=bbb:200ms\n")
        os.utime(setup.config, ns=(before.st_atime_ns, before.st_mtime_ns))
        time.sleep(2)  # two watcher polls: long enough for it to have (wrongly) noticed
        assert current(setup, "edge_second") is None, "the watcher saw the change: this test proves nothing"

        collector.send_signal(signal.SIGHUP)
        wait_for(setup, "edge_second", 2)
        wait_for(setup, "edge_first", None)
        assert setup.log_lines("SIGHUP")
        assert collector.poll() is None

    def test_sighup_during_a_run_does_not_cut_it_short(self, tmp_path: Path, procs: Processes) -> None:
        """SIGHUP while a script runs: the run completes and is exported, then the config is reloaded."""
        running = tmp_path / "running"
        setup = Setup(root=tmp_path)
        setup.conf_dir.mkdir()
        write_script(setup.conf_dir, "slow", f"touch {running}\nsleep 1\necho done=1\n")
        setup.config.write_text("node-1=slow:1m\n")
        collector = start_collector(procs, setup)
        wait_until(running.exists, timeout=5, what="the run to start")
        collector.send_signal(signal.SIGHUP)
        wait_for(setup, "edge_done", 1)
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_script_success", script="slow") == 1
        assert value(samples, "edge_collector_script_duration_seconds", script="slow") >= 1  # type: ignore[operator]
        wait_until(lambda: setup.log_lines("SIGHUP") and len(setup.log_lines("config loaded")) == 2, timeout=5,
                   what="the reload after the run")
        assert collector.poll() is None
