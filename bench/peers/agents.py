"""The five approaches side by side: how each is started on the same script at the same interval, which
process's CPU and memory are its own, and where Prometheus finds its readings."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.centre import NodeExporter, Scrape, Vmagent
from bench.peers.scripts import EXPOSITION, KEY_VALUE, PUTVAL, Format
from bench.workload import collector_command
from tests.helpers import REPO, Processes, free_port, wait_until

PEERS_ENV = REPO / ".cache" / "components" / "peers.env"
NOBODY = "nobody:nogroup"  # collectd's exec plugin refuses to run a program as root (collectd.conf(5))


def peers() -> dict[str, str]:
    if not PEERS_ENV.exists():
        raise SystemExit(f"{PEERS_ENV} missing: run `make bench-peers` (tools/fetch-components.sh peers)")
    lines = PEERS_ENV.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True, slots=True)
class Setup:
    """What every approach is given: its own directory, the shared textfile directory's parent, the interval."""

    procs: Processes
    workdir: Path
    textfile_root: Path  # tmpfs where there is one: the DaemonSet's textfile volume is in memory
    interval: float
    prometheus_write: str  # Prometheus's remote-write URL
    edge_env: dict[str, str] = field(default_factory=dict)  # e.g. EDGE_MAX_SERIES for the 1 MiB output


@dataclass(frozen=True, slots=True)
class Running:
    """One started approach. `pid`'s CPU and memory are the approach's own; with `script_in_cpu` its CPU
    figure (the loop shell's, children included) holds the script's and the bench subtracts that."""

    pid: int
    spawned: float  # time.time() just before the approach's own process was spawned
    scrape: Scrape | None  # where Prometheus scrapes it; None when its readings are pushed
    metric: str  # reading 0's series name in Prometheus
    script_in_cpu: bool = False
    first_run_is_own: bool = True  # False: the first run waits for the first scrape, not for the approach


@dataclass(frozen=True, slots=True)
class Approach:
    name: str
    fmt: Format
    start: Callable[[Setup, Path], Running]  # (setup, script) -> running


def _edge(setup: Setup, script: Path, *, push: bool) -> Running:
    work = setup.workdir
    (work / "nodes.conf").write_text(f"bench={script.stem}:{round(setup.interval * 1000)}ms\n")
    textfile = setup.textfile_root / work.name
    textfile.mkdir(parents=True)
    env = {**os.environ, **setup.edge_env}
    scrape = None
    if push:
        vmagent = Vmagent(setup.procs, work, approach="edge-push", remote_write=setup.prometheus_write)
        env |= {"EDGE_PUSH_URL": vmagent.import_url, "EDGE_SPOOL_DIR": str(work / "spool"),
                "EDGE_CLOCK_CHECK": "none"}
    else:
        scrape = Scrape("edge-textfile", NodeExporter(setup.procs, work, textfile, "edge").target)
    spawned = time.time()
    proc = setup.procs.start(
        [*collector_command(), "run", "--config", work / "nodes.conf", "--node-name", "bench",
         "--output", textfile / "custom_metrics.prom", "--log-level", "warning"],
        env=env, log=work / "collector.log",
    )
    return Running(proc.pid, spawned, scrape, "edge_sensor_00")


def _collectd(setup: Setup, script: Path) -> Running:
    tools, work, port = peers(), setup.workdir, free_port()
    config = work / "collectd.conf"
    config.write_text(f"""\
Hostname "bench"
FQDNLookup false
BaseDir "{work}"
PIDFile "{work}/collectd.pid"
PluginDir "{tools['COLLECTD_PLUGIN_DIR']}"
TypesDB "{tools['COLLECTD_TYPES_DB']}"
Interval {setup.interval}
AutoLoadPlugin false
LoadPlugin exec
LoadPlugin write_prometheus
<Plugin exec>
  Exec "{NOBODY}" "{script}"
</Plugin>
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "{port}"
</Plugin>
""")
    env = {**os.environ, "LD_LIBRARY_PATH": tools["PEERS_LIBRARY_PATH"]}
    spawned = time.time()
    proc = setup.procs.start([tools["COLLECTD_BIN"], "-f", "-C", config], env=env, log=work / "collectd.log")
    target = f"127.0.0.1:{port}"
    wait_until(lambda: _answers(target), timeout=30, what="collectd's write_prometheus")
    return Running(proc.pid, spawned, Scrape("collectd", target), "collectd_exec_gauge")


def _script_exporter(setup: Setup, script: Path) -> Running:
    work, port = setup.workdir, free_port()
    config = work / "script-exporter.yml"
    config.write_text(f"scripts:\n  - name: sensors\n    command: [{script}]\n")
    spawned = time.time()
    proc = setup.procs.start(
        [peers()["SCRIPT_EXPORTER_BIN"], f"--config.files={config}", f"--web.listen-address=127.0.0.1:{port}"],
        log=work / "script-exporter.log",
    )
    target = f"127.0.0.1:{port}"
    wait_until(lambda: _answers(target), timeout=30, what="script_exporter")
    probe = Scrape("script_exporter", target, "/probe", (("script", "sensors"),))
    return Running(proc.pid, spawned, probe, "sensor_00", first_run_is_own=False)


def _shell(setup: Setup, script: Path) -> Running:
    textfile = setup.textfile_root / setup.workdir.name
    textfile.mkdir(parents=True)
    exporter = NodeExporter(setup.procs, setup.workdir, textfile, "shell")
    spawned = time.time()
    proc = setup.procs.start(
        ["bash", REPO / "bench" / "shell_loop.sh", str(10**9), f"{setup.interval:.3f}", script,
         textfile / "custom_metrics.prom"],
        log=setup.workdir / "shell.log",
    )
    return Running(proc.pid, spawned, Scrape("shell", exporter.target), "edge_sensor_00", script_in_cpu=True)


def _answers(target: str) -> bool:
    host, _, port = target.partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


APPROACHES = (
    Approach("edge-push", KEY_VALUE, lambda setup, script: _edge(setup, script, push=True)),
    Approach("edge-textfile", KEY_VALUE, lambda setup, script: _edge(setup, script, push=False)),
    Approach("collectd", PUTVAL, _collectd),
    Approach("script_exporter", EXPOSITION, _script_exporter),
    Approach("shell", KEY_VALUE, _shell),
)
TITLES = {
    "edge-push": "edge-metrics, push mode (to vmagent)",
    "edge-textfile": "edge-metrics, textfile path",
    "collectd": "collectd 5.12 exec plugin + write_prometheus",
    "script_exporter": "script_exporter 3.0.1, scraped",
    "shell": "shell loop (bench/shell_loop.sh)",
}
