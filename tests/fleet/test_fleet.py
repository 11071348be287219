"""A small fleet (bench/fleet) inside `make test`: 3 nodes in network namespaces, a one-minute partition of
one of them with a reboot in the middle, a centre restart and a fleet-wide reconnect, against both central
stores; nothing may be lost and nothing may be left behind. Needs root (`ip netns`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.fleet.fleet import Fleet
from bench.fleet.net import NETNS_PREFIX, ip, remove_leftovers
from tests.fleet.support import small_fleet
from tests.helpers import COMPONENTS_ENV, REPO, Processes, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(900)]


def fleet_names(pid: int) -> list[str]:
    """Namespaces and links of the fleet run by process `pid`."""
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    names += [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show").splitlines()]
    return [n for n in names if n.startswith((f"{NETNS_PREFIX}{pid}-", f"emf{pid}"))]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root for ip netns")
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make venv components sim` first (make test does)")
    built: list[Fleet] = []

    def build(**changes: object) -> Fleet:
        settings = small_fleet(**changes)
        fleet = Fleet(settings, Processes(), tmp_path, lambda message: print(message))
        built.append(fleet)
        fleet.start()
        return fleet

    yield build
    for fleet in built:
        fleet.close()
        assert fleet_names(os.getpid()) == [], "namespaces or links left behind"


class TestFleet:
    def test_partition_reboot_restart_herd_lose_nothing_on_prometheus(self, fleet: Callable[..., Fleet]) -> None:
        """Every scrape of every node reaches the centre through a one-minute partition (with the node
        rebooted in the middle, its disk queue kept), a restart of the centre and all nodes reconnecting
        at once; the cut-off node's queue grew while it was away and drained once it was back."""
        f = fleet(store="prometheus")
        temperatures = wait_until(
            lambda: len(result := f.centre.query("edge_temperature")) == 3 and result,
            timeout=60,
            what="a temperature from every node",
        )
        values = {r["metric"]["node"]: r["value"][1] for r in temperatures}
        assert len(set(values.values())) == 3, f"nodes should report their own readings: {values}"
        figures = [f.partition(60, reboot=True), f.centre_restart(15), f.herd(20)]
        for figure in figures:
            assert figure.lost == 0, figure
            assert figure.queue_bytes_per_hour > 0, figure
            assert figure.drain_s > 0 and figure.fresh_s > 0, figure
        readings = f.account()
        assert all(r.ok for r in readings), readings
        assert all(r.expected >= 40 for r in readings), readings  # ~2 min at one scrape per 2 s

    def test_partition_with_reboot_loses_nothing_on_victoriametrics(self, fleet: Callable[..., Fleet]) -> None:
        """The same partition against VictoriaMetrics single-node from deploy/victoria-metrics: every
        scrape stored exactly once (re-sent blocks deduplicated)."""
        f = fleet(store="victoriametrics")
        figure = f.partition(45, reboot=True)
        assert figure.lost == 0, figure
        readings = f.account()
        assert all(r.ok for r in readings), readings


def test_sigterm_stops_everything_and_removes_the_namespaces(tmp_path: Path) -> None:
    """`make fleet` interrupted with SIGTERM (as Ctrl-C or a CI timeout would) stops every process it
    started and removes its namespaces and links. It runs the textfile path (the push path is the
    default, run by the tests above), whose readings must have reached the centre before it is up."""
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root for ip netns")
    log = tmp_path / "fleet.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.fleet", "--nodes", "2", "--path", "textfile"),
                *("--workdir", str(tmp_path / "work")),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: b"nodes on 198.18." in log.read_bytes(), timeout=180, interval=0.5, what="fleet up")
        assert fleet_names(proc.pid), "the fleet's namespaces should exist while it runs"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        assert fleet_names(proc.pid) == []
        time.sleep(0.5)
        leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert leftovers == [], f"processes left behind: {leftovers}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_leftovers_of_a_dead_fleet_are_removed() -> None:
    """A namespace left by a fleet whose process is gone is removed when the next fleet starts; one of a
    fleet still running is not."""
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root for ip netns")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, alive = f"{NETNS_PREFIX}{dead.pid}-0", f"{NETNS_PREFIX}{os.getpid()}-999"
    ip("netns", "add", stale)
    ip("netns", "add", alive)
    try:
        removed = remove_leftovers()
        assert stale in removed and alive not in removed
        names = ip("netns", "list")
        assert stale not in names and alive in names
    finally:
        ip("netns", "delete", stale, check=False)
        ip("netns", "delete", alive, check=False)
