"""What the fleet measures: readings expected vs stored per node, the centre's ingestion rate, CPU and RSS
(from /proc), queue bytes, drain and freshness times."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import NamedTuple

from bench.fleet.centre import Centre
from bench.fleet.node import FleetNode
from bench.procfs import cpu_times, status_kib


class Readings(NamedTuple):
    node: str
    expected: int  # counted at the node: scrapes node_exporter served (textfile) or script runs (push)
    stored: int  # samples the centre holds for them
    missing: int  # expected values absent at the centre

    @property
    def ok(self) -> bool:
        return self.expected == self.stored and self.missing == 0


# Textfile path: node_exporter counts the /metrics requests it served (nothing but vmagent asks it: the
# fleet never reads it), and every scrape stores that counter's value before the increment. The values at
# the centre must therefore be exactly 0, 1, ..., n-1: a lost scrape is a gap.
_TEXTFILE_SERIES = 'promhttp_metric_handler_requests_total{{code="200",job="node-exporter",node{op}"{node}"}}'
# Push path: the counter script prints 1, 2, ..., n, one value per run (its state file holds n).
_PUSH_SERIES = 'edge_fleet_counter{{node{op}"{node}"}}'


def readings(centre: Centre, node: FleetNode, window: str, until: float) -> Readings:
    """Both counters start at the node (0 for node_exporter's, 1 for the counter script's) and go up by one
    per reading; the newest value stored says how many readings the node had made by then. Only readings
    taken up to `until` count: later ones may still be on their way."""
    series, first = (_PUSH_SERIES, 1) if node.path == "push" else (_TEXTFILE_SERIES, 0)
    samples = centre.raw_samples(series.format(op="=", node=node.name), window)
    values = [int(v) for t, v in samples if t <= until]
    expected = max(values) + 1 - first if values else 0
    return Readings(node.name, expected, len(values), len(set(range(first, first + expected)) - set(values)))


def latest_timestamps(centre: Centre, path: str) -> dict[str, float]:
    """Time of the newest reading of every node at the centre, in one query (a fleet of hundreds is
    polled every second)."""
    series = (_PUSH_SERIES if path == "push" else _TEXTFILE_SERIES).format(op="=~", node=".+")
    latest: dict[str, float] = {}
    for r in centre.query(f"timestamp({series})"):
        node = str(r["metric"]["node"])  # type: ignore[index]
        latest[node] = max(latest.get(node, 0.0), float(r["value"][1]))  # type: ignore[index]
    return latest


class CentreSample(NamedTuple):
    at: float
    ingested: float  # samples appended since the store started
    cpu: float  # seconds of CPU
    rss_kib: int


def centre_sample(centre: Centre) -> CentreSample | None:
    """The centre's figures now: its store's ingestion counter, and CPU and RSS of the store, the gate and the
    vmauth in front of them together (TLS and the nodes' connections cost vmauth's CPU, decoding the gate's)."""
    if centre.proc is None:
        return None
    pids = [proc.pid for proc in (centre.proc, centre.ingest.vmauth, centre.ingest.gate) if proc is not None]
    try:
        return CentreSample(
            time.time(),
            centre.ingested_samples(),
            sum(cpu_times(pid).own for pid in pids),
            sum(status_kib(pid, "VmRSS") for pid in pids),
        )
    except (OSError, KeyError):
        return None


class Load(NamedTuple):
    rate_mean: float  # samples/s over the period
    rate_peak: float  # samples/s, highest between two consecutive polls
    cpu_cores: float  # mean CPU of the centre over the period
    rss_mib: float  # highest resident memory of the centre seen


def load(samples: Sequence[CentreSample]) -> Load:
    if len(samples) < 2:
        return Load(0.0, 0.0, 0.0, 0.0)
    first, last = samples[0], samples[-1]
    span = max(last.at - first.at, 1e-9)
    peak = 0.0
    for before, after in itertools.pairwise(samples):
        if after.ingested >= before.ingested and after.at > before.at:
            peak = max(peak, (after.ingested - before.ingested) / (after.at - before.at))
    return Load(
        (last.ingested - first.ingested) / span if last.ingested >= first.ingested else 0.0,
        peak,
        (last.cpu - first.cpu) / span,
        max(s.rss_kib for s in samples) / 1024,
    )
