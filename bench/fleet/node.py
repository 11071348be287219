"""One simulated edge node in its own network namespace: the real collector under the I2C simulator with a
model of its own, node_exporter, and vmagent with its own disk queue, configured from deploy/ as in
testbed (only addresses, ports and paths substituted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from bench.fleet.net import NodeLink, in_netns
from edge_metrics.clock import adjtimex
from testbed.flags import override_flags, read_flags
from testbed.net import http_get
from testbed.node import Node
from testbed.paths import DEPLOY, EDGE_METRICS
from tests.helpers import REPO, Processes, wait_until

SCRIPTS = REPO / "scripts"
MODEL = SCRIPTS / "models" / "space_server.yaml"
# The shipped port. vmagent listens on the node's address instead of its loopback (the shipped
# 127.0.0.1): the fleet reads every node's queue from the host side; the centre still gets vmagent's
# health from the self-scrape job of scrape.yml, as in production.
VMAGENT_PORT = 8429
PATHS = ("textfile", "push")
SECOND_CENTRE_FLAGS = DEPLOY / "vmagent" / "vmagent-second-centre.flags"

COUNTER_SCRIPT = """#!/bin/bash
# The fleet's reading counter: one more each run, its state beside it, so the centre can be checked
# for every value 1..n (the push path sends every run's readings, not only those a scrape saw).
state={state}
n=$(( $(cat "$state" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$state"
echo "fleet_counter=$n"
"""


def node_name(index: int) -> str:
    return f"fleet-{index:04d}"


def clock_synchronised() -> bool:
    """The kernel's word on this machine's clock (adjtimex), which the collector checks in push mode."""
    return bool(adjtimex()[0])


def node_model(index: int) -> str:
    """The space_server model with values shifted per node, so every node reports its own readings."""
    model = yaml.safe_load(MODEL.read_text())
    registers = model["buses"][0]["devices"][0x40]["registers"]
    for register in (0x00, 0x01):
        sine = registers[register]["value"]["sine"]
        sine["center"] += 97 * index  # ~0.24 degC and ~0.15 %RH apart
    return yaml.safe_dump(model, sort_keys=False)


class FleetNode(Node):
    def __init__(
        self,
        procs: Processes,
        workdir: Path,
        *,
        index: int,
        link: NodeLink,
        remote_write_url: str,
        credentials: Path,
        scrape_interval: str,
        collector_interval: str,
        path: str,
        second_remote_write_url: str | None = None,
        vmagent_overrides: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            procs,
            workdir,
            name=node_name(index),
            remote_write_url=remote_write_url,
            scrape_interval=scrape_interval,
            credentials=credentials,
            vmagent_address=f"{link.address}:{VMAGENT_PORT}",
        )
        self.index = index
        self.link = link
        self.path = path
        self.model = workdir / "model.yaml"
        self.model.write_text(node_model(index))
        self.scripts = workdir / "scripts"
        self.scripts.mkdir()
        shutil.copy(SCRIPTS / "space_server.sh", self.scripts)
        plan = f"space_server:{collector_interval}"
        if path == "push":
            (self.scripts / "fleet_counter.sh").write_text(
                COUNTER_SCRIPT.format(state=str(self.scripts / "counter.state"))
            )
            plan += f",fleet_counter:{collector_interval}"
        self.config = self.scripts / "nodes.conf"
        self.config.write_text(f"{self.name}={plan}\n")
        self.spool_dir = workdir / "spool"
        self.second_remote_write_url = second_remote_write_url
        self.vmagent_overrides = vmagent_overrides or {}

    def vmagent_argv(self) -> list[str]:
        """deploy/vmagent/vmagent.flags (with the fleet's overrides, e.g. the rate limit), plus
        vmagent-second-centre.flags when the fleet has two centres."""
        binary, *flags = super().vmagent_argv()
        flags = override_flags(flags, self.vmagent_overrides)
        if self.second_remote_write_url is not None:
            flags += read_flags(SECOND_CENTRE_FLAGS, {"REMOTE_WRITE_URL_2": self.second_remote_write_url})
        return [binary, *flags]

    # processes -------------------------------------------------------------------------------------
    def start_all(self) -> None:
        self.start_node_exporter()
        self.start_vmagent()
        self.start_fleet_collector()

    def start_node_exporter(self) -> None:
        # Not polled: node_exporter's own request counter is how readings are counted (see accounting).
        self.node_exporter = self.procs.start(
            in_netns(self.link.netns, self.node_exporter_argv()), log=self.workdir / "node-exporter.log"
        )

    def start_vmagent(self, *, wait: bool = True) -> None:
        self.vmagent = self.procs.start(
            in_netns(self.link.netns, self.vmagent_argv()), log=self.workdir / "vmagent.log"
        )
        if wait:
            wait_until(self.vmagent_ready_inside, timeout=60, what=f"{self.name}: vmagent serving /metrics")

    def vmagent_ready_inside(self) -> bool:
        """Probed from inside the namespace, so it works while the node's link is down."""
        probe = f"import urllib.request; urllib.request.urlopen('http://{self.vmagent_address}/health', timeout=2)"
        result = subprocess.run(in_netns(self.link.netns, [sys.executable, "-c", probe]), capture_output=True)
        return result.returncode == 0

    def start_fleet_collector(self) -> None:
        extra: list[str] = []
        if self.path == "push":
            # The push path: the collector posts to its node's vmagent (import API), spooling while it is away.
            push_url = f"http://{self.vmagent_address}/api/v1/import/prometheus"
            extra = ["--push-url", push_url, "--spool-dir", str(self.spool_dir)]
            if not clock_synchronised():
                # As `make demo` does: this machine's clock is not NTP-disciplined in the kernel's eyes, and
                # the collector would hold every reading (docs/time.md); it is right, so trust it.
                extra += ["--clock-check", "none"]
        self.start_collector(
            config=self.config,
            extra_args=extra,
            env={"PYTHONUNBUFFERED": "1"},
            wrapper=in_netns(self.link.netns, [str(EDGE_METRICS), "simulate", "--model", str(self.model), "--"]),
        )

    def reboot(self) -> None:
        """Collector and vmagent stopped and started again; the queue directory stays on disk."""
        assert self.collector is not None
        self.procs.stop(self.collector, timeout=30)
        self.stop_vmagent()
        self.start_vmagent()
        self.start_fleet_collector()

    # figures ---------------------------------------------------------------------------------------
    def queue_disk_bytes(self) -> int:
        """Bytes in vmagent's disk queue directory (readable while the link is down)."""
        total = 0
        for root, _dirs, files in os.walk(self.queue_dir):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    continue
        return total

    def vmagent_up(self) -> bool:
        try:
            return http_get(f"http://{self.vmagent_address}/health", timeout=2) == b"OK"
        except OSError:
            return False
