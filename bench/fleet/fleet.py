"""The fleet and its scenarios: steady state, a partition of some nodes (one rebooted meanwhile), the
central store restarted, every node reconnecting at once. Each scenario returns its figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from bench.fleet.centre import Centre, make_centre
from bench.fleet.measure import CentreSample, Load, Readings, centre_sample, latest_timestamps, load, readings
from bench.fleet.net import FleetNetwork, remove_leftovers
from bench.fleet.node import FleetNode, node_name
from testbed.node import next_retry
from tests.helpers import Processes, wait_until

# A sample is stored before the store shows it to queries: VictoriaMetrics buffers new rows in
# per-CPU shards for up to a few seconds, so a newer sample can be visible while an older one is not
# yet. Readings are counted only up to a moment every node has sent readings this much newer than.
VISIBLE_AFTER = 5.0


class Settings(NamedTuple):
    nodes: int
    store: str  # prometheus | victoriametrics
    path: str  # textfile | push
    scrape_interval: str  # vmagent's scrape of node_exporter (deploy/vmagent/scrape.yml: 15s)
    collector_interval: str  # the space_server script's interval (scripts/nodes.conf: 10s)
    cut_fraction: float
    drain_timeout: float
    rate_limit: int | None = None  # -remoteWrite.rateLimit in bytes/s instead of the shipped value
    second_centre: bool = False  # every node also sends to a second centre (vmagent-second-centre.flags)


class Figures(NamedTuple):
    scenario: str
    nodes_affected: int
    outage_s: float
    drain_s: float  # link back (or centre back) -> the last affected node's queue empty
    fresh_s: float  # same start -> the centre holds a reading taken after it, for every affected node
    queue_bytes_per_hour: float  # on disk per affected node, extrapolated from the outage
    retry_wait_s: float  # back -> vmagent's next send attempt (its retry back-off), longest of the nodes
    load: Load  # the centre during the catch-up (or the steady period)
    lost: int  # readings missing at the centre after the scenario, whole fleet


class Fleet:
    def __init__(self, settings: Settings, procs: Processes, workdir: Path, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.procs = procs
        self.workdir = workdir
        self.log = log
        self.started = time.time()
        removed = remove_leftovers()
        if removed:
            log(f"removed leftovers of an earlier fleet: {' '.join(removed)}")
        self.net = FleetNetwork()
        try:
            names = [node_name(index) for index in range(settings.nodes)]
            self.centre: Centre = make_centre(
                settings.store,
                procs,
                workdir,
                host=self.net.host_address,
                nodes=names,
                scrape_interval=settings.scrape_interval,
            )
            self.second: Centre | None = None
            if settings.second_centre:
                (workdir / "second-centre").mkdir(exist_ok=True)
                self.second = make_centre(
                    settings.store,
                    procs,
                    workdir / "second-centre",
                    host=self.net.host_address,
                    nodes=names,
                    scrape_interval=settings.scrape_interval,
                    credentials_from=self.centre.credentials,  # the same CA and tokens: one set per node
                )
        except BaseException:
            self.net.close()
            raise
        self.nodes: list[FleetNode] = []

    def close(self) -> None:
        self.procs.cleanup()
        self.net.close()

    # set-up ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.centre.start()
        if self.second is not None:
            self.second.start()
        overrides = (
            {} if self.settings.rate_limit is None else {"-remoteWrite.rateLimit": str(self.settings.rate_limit)}
        )
        for index in range(self.settings.nodes):
            link = self.net.add_node()
            node = FleetNode(
                self.procs,
                self.workdir / f"node-{index:04d}",
                index=index,
                link=link,
                remote_write_url=self.centre.ingest.write_url,
                credentials=self.centre.credentials.node_dir(node_name(index)),
                scrape_interval=self.settings.scrape_interval,
                collector_interval=self.settings.collector_interval,
                path=self.settings.path,
                second_remote_write_url=None if self.second is None else self.second.ingest.write_url,
                vmagent_overrides=overrides,
            )
            node.start_all()
            self.nodes.append(node)
        wait_until(
            lambda: self.all_newer_than(self.centre, 0.0),
            timeout=120 + 2 * self.settings.nodes,
            interval=1,
            what="a reading of every node at the centre",
        )
        self.log(f"{len(self.nodes)} nodes on {self.net.block}, centre {self.settings.store} at {self.centre.url}")

    def window(self) -> str:
        return f"{int(time.time() - self.started) + 120}s"

    def cut_nodes(self) -> list[FleetNode]:
        count = max(1, round(len(self.nodes) * self.settings.cut_fraction))
        return self.nodes[:count]

    # accounting ------------------------------------------------------------------------------------
    def account(self, centre: Centre | None = None) -> list[Readings]:
        """Readings per node at `centre` (default: the first) taken before this call began, counted once
        every node's newest reading there is VISIBLE_AFTER newer: vmagent sends in order, so nothing
        before that moment can still be queued."""
        centre = centre or self.centre
        began = time.time()
        wait_until(
            lambda: self.all_newer_than(centre, began + VISIBLE_AFTER),
            timeout=self.settings.drain_timeout,
            interval=1,
            what="a reading newer than the accounting's start from every node",
        )
        return [readings(centre, node, self.window(), began) for node in self.nodes]

    def all_newer_than(self, centre: Centre, moment: float) -> bool:
        latest = latest_timestamps(centre, self.settings.path)
        return all(latest.get(n.name, 0.0) > moment for n in self.nodes)

    def lost(self) -> int:
        """Readings missing or duplicated, whole fleet, at every centre."""
        centres = [self.centre] if self.second is None else [self.centre, self.second]
        return sum(r.missing + abs(r.expected - r.stored) for c in centres for r in self.account(c))

    def series_per_node(self) -> float:
        """Mean number of series a node sends (its node_exporter scrape, with `up` and scrape series)."""
        result = self.centre.query('count by (node) ({job="node-exporter", node=~"fleet-.*"})')
        counts = [float(r["value"][1]) for r in result]  # type: ignore[index]
        return sum(counts) / len(counts) if counts else 0.0

    # watching the catch-up -------------------------------------------------------------------------
    def catch_up(self, nodes: Sequence[FleetNode], since: float) -> tuple[float, float, list[CentreSample]]:
        """Poll until every node's queue is empty and the centre holds a reading taken after `since`;
        returns (drain seconds, freshness seconds, the centre's samples meanwhile)."""
        drained: dict[str, float] = {}
        fresh: dict[str, float] = {}
        samples: list[CentreSample] = []
        deadline = time.monotonic() + self.settings.drain_timeout
        while len(drained) < len(nodes) or len(fresh) < len(nodes):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"catch-up not done after {self.settings.drain_timeout:.0f} s: drained {sorted(drained)}, "
                    f"fresh {sorted(fresh)} of {[n.name for n in nodes]}"
                )
            sample = centre_sample(self.centre)
            if sample is not None:
                samples.append(sample)
            now = time.time()
            waiting = [n for n in nodes if n.name not in drained]
            with ThreadPoolExecutor(max_workers=16) as pool:  # hundreds of vmagents, one second
                for node, pending in zip(waiting, pool.map(pending_or_none, waiting), strict=True):
                    if pending == 0:
                        drained[node.name] = now - since
            try:
                latest = latest_timestamps(self.centre, self.settings.path)
            except OSError:
                latest = {}  # the centre not answering yet
            for node in nodes:
                if node.name not in fresh and latest.get(node.name, 0.0) >= since:
                    fresh[node.name] = now - since
            time.sleep(1)
        return max(drained.values()), max(fresh.values()), samples

    # scenarios -------------------------------------------------------------------------------------
    def steady(self, duration: float) -> Figures:
        samples = self._watch(duration)
        return Figures("steady state", 0, 0.0, 0.0, 0.0, 0.0, 0.0, load(samples), self.lost())

    def partition(self, duration: float, *, reboot: bool) -> Figures:
        """The first cut_fraction of the nodes lose their link for `duration`; with `reboot`, the first of
        them has its collector and vmagent restarted halfway (its disk queue kept)."""
        cut = self.cut_nodes()
        name = "partition + reboot" if reboot else "partition"
        self.log(f"{name}: {len(cut)} of {len(self.nodes)} nodes cut off for {duration:.0f} s")
        down = time.time()
        self.net.set_link([n.link for n in cut], up=False)
        if reboot:
            self._watch(duration / 2)
            self.log(f"rebooting {cut[0].name} (collector and vmagent) while it is cut off")
            cut[0].reboot()
        self._watch(down + duration - time.time())
        return self._outage_figures(name, cut, down, lambda: self.net.set_link([n.link for n in cut], up=True))

    def centre_restart(self, duration: float) -> Figures:
        self.log(f"centre restart: {self.settings.store} down for {duration:.0f} s")
        down = time.time()
        self.centre.stop()
        time.sleep(duration)
        return self._outage_figures("centre restart", self.nodes, down, self.centre.start)

    def herd(self, duration: float) -> Figures:
        self.log(f"thundering herd: all {len(self.nodes)} nodes cut off for {duration:.0f} s, then back at once")
        down = time.time()
        self.net.set_link([n.link for n in self.nodes], up=False)
        self._watch(duration)
        return self._outage_figures(
            "thundering herd", self.nodes, down, lambda: self.net.set_link([n.link for n in self.nodes], up=True)
        )

    def _outage_figures(
        self, name: str, nodes: Sequence[FleetNode], down: float, restore: Callable[[], None]
    ) -> Figures:
        """An outage that began at `down`: its queue sizes, then `restore`, then the catch-up and the count."""
        queue = sum(n.queue_disk_bytes() for n in nodes) / len(nodes)
        restore()
        back = time.time()
        outage = back - down
        wait = retry_wait(nodes, back)
        drain, fresh, samples = self.catch_up(nodes, back)
        return Figures(name, len(nodes), outage, drain, fresh, queue * 3600 / outage, wait, load(samples), self.lost())

    def _watch(self, duration: float) -> list[CentreSample]:
        """Sample the centre every second for `duration` seconds."""
        samples: list[CentreSample] = []
        end = time.monotonic() + max(duration, 0.0)
        while time.monotonic() < end:
            sample = centre_sample(self.centre)
            if sample is not None:
                samples.append(sample)
            time.sleep(min(1.0, max(end - time.monotonic(), 0.0)))
        return samples


def pending_or_none(node: FleetNode) -> float | None:
    """A vmagent's undelivered bytes, or None while it does not answer."""
    try:
        return node.pending_bytes()
    except OSError:
        return None


def retry_wait(nodes: Sequence[FleetNode], back: float) -> float:
    """How long after `back` the slowest vmagent makes its next attempt, from its log's latest
    "re-sending the block in N seconds" line: the part of a drain that is back-off, not transfer."""
    waits = [max((next_retry(n.workdir / "vmagent.log") or back) - back, 0.0) for n in nodes]
    return max(waits, default=0.0)
