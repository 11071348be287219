"""What one node as shipped sends, measured: a real node writes through the centre under test for a window, and its
series are then read back from the store. The node is bench/fleet's (FleetNode: node_exporter, vmagent and the
collector in push mode running the shipped space_server script under the I2C simulator, plus the fleet's reading
counter, configured from deploy/) in a network namespace of its own, so that node_exporter reports a board's one
interface and not every link of this shared host.

Series stored with the same timestamp came in one scrape (or one collector run's push): each such group is one
part of a flush, repeated at the interval its timestamps show. The node's vmagent's own counters over the window
give what it really put on the wire (requests, rows, bytes), to set beside the generator's."""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.fleet.centre import Centre
from bench.fleet.net import NodeLink
from bench.fleet.node import FleetNode, node_name
from edge_metrics.remotewrite import Labels
from testbed.exposition import metric_sum
from testbed.flags import read_flags
from testbed.paths import GATE_FLAGS
from testbed.poll import wait_until
from testbed.processes import Processes

PROFILE_NODE = node_name(0)
# gate.flags' --centre-jobs: the gate renames a node's claim to one of them, so at the store they are the centre's.
CENTRE_JOBS = dict(f.partition("=")[::2] for f in read_flags(GATE_FLAGS, {}))["--centre-jobs"].split(",")


@dataclass(frozen=True, slots=True)
class Group:
    interval: float  # seconds between two of its timestamps
    series: tuple[tuple[Labels, float], ...]  # labels without node and cluster (the gate sets them), last value


@dataclass(frozen=True, slots=True)
class Wire:
    """The real vmagent's remote write over the window."""

    requests_per_s: float
    rows_per_s: float
    bytes_per_row: float


@dataclass(frozen=True, slots=True)
class NodeProfile:
    groups: tuple[Group, ...]
    wire: Wire

    @property
    def series(self) -> int:
        return sum(len(g.series) for g in self.groups)

    @property
    def samples_per_s(self) -> float:
        return sum(len(g.series) / g.interval for g in self.groups)


def measure(procs: Processes, workdir: Path, centre: Centre, *, link: NodeLink, scrape: str, script: str,
            window: float) -> NodeProfile:
    node = FleetNode(procs, workdir, index=0, link=link, remote_write_url=centre.ingest.write_url,
                     credentials=centre.credentials.node_dir(PROFILE_NODE), scrape_interval=scrape,
                     collector_interval=script, path="push")
    node.start_all()
    selector = f'{{node="{PROFILE_NODE}"}}'
    wait_until(lambda: centre.query(f"count({selector})"), timeout=120, what="the profile node's first samples")
    before, started = node.vmagent_metrics(), time.monotonic()
    deadline = started + window
    while time.monotonic() < deadline:  # the measured window itself
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    after, span = node.vmagent_metrics(), time.monotonic() - started
    groups = wait_until(lambda: _groups(centre, selector, f"{int(window) + 30}s"), timeout=180,
                        what="two samples of every group of the profile node")
    for proc in (node.collector, node.vmagent, node.node_exporter):
        if proc is not None:
            procs.stop(proc, timeout=30)

    def delta(name: str) -> float:
        return (metric_sum(after, name) - metric_sum(before, name)) / span

    rows = delta("vmagent_remotewrite_block_size_rows_sum")
    wire = Wire(delta("vmagent_remotewrite_requests_total"), rows,
                delta("vmagent_remotewrite_bytes_sent_total") / rows if rows else 0.0)
    return NodeProfile(groups, wire)


def _groups(centre: Centre, selector: str, window: str) -> tuple[Group, ...] | None:
    by_stamp: dict[float, list[tuple[Labels, float, list[float]]]] = {}
    for result in centre.query(f"{selector}[{window}]"):
        metric: dict[str, str] = result["metric"]  # type: ignore[assignment]
        values: list[list[str]] = result["values"]  # type: ignore[assignment]
        if metric.get("job") in CENTRE_JOBS or ":" in metric["__name__"]:
            continue  # the centre's own: its scrape of the gate (per-node counters), its recording rules
        stamps = [float(t) for t, _ in values]
        labels = tuple(sorted((k, v) for k, v in metric.items() if k not in ("node", "cluster")))
        by_stamp.setdefault(stamps[-1], []).append((labels, float(values[-1][1]), stamps))
    groups = []
    for members in by_stamp.values():
        stamps = max((m[2] for m in members), key=len)
        if len(stamps) < 2:
            return None  # not yet two scrapes of this group: its interval is unknown
        interval = statistics.median(b - a for a, b in itertools.pairwise(stamps))
        groups.append(Group(round(interval, 1), tuple((labels, value) for labels, value, _ in members)))
    return tuple(sorted(groups, key=lambda g: -len(g.series))) or None
