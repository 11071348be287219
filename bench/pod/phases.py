"""Watching the pod through one phase (steady state, outage, drain): each container's CPU, resident memory
(sampled) and writes, with the kubelet's liveness probes run at their periods, as on a node."""

from __future__ import annotations

import resource
import statistics
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.pod.tree import Usage, usage
from bench.procfs import cpu_times


@dataclass(frozen=True, slots=True)
class Probe:
    """A liveness probe the kubelet runs: its cost lands in the container's cgroup (exec) or in the container's
    own process answering it (HTTP)."""

    container: str
    period_s: float
    run: Callable[[], object]


def http_probe(url: str, timeout: float) -> Callable[[], object]:
    def run() -> object:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()

    return run


@dataclass(frozen=True, slots=True)
class Figures:
    """One container through one phase."""

    cpu_s: float  # its processes' CPU, the probes' commands included
    own_cpu_s: float  # the main process alone (for the collector: without its scripts)
    probe_cpu_s: float  # exec probes' commands (bash), which the kubelet runs in the container
    rss_median_kib: int
    rss_peak_kib: int
    rss_growth_kib: int  # median of the phase's last quarter of samples less that of its first quarter
    write_bytes: int


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    start: float  # epoch seconds
    end: float
    containers: Mapping[str, Figures]

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def share(self, container: str) -> float:
        """CPU as a share of one core."""
        return self.containers[container].cpu_s / self.seconds


def _children_cpu_s() -> float:
    spent = resource.getrusage(resource.RUSAGE_CHILDREN)
    return spent.ru_utime + spent.ru_stime


class Prober:
    """Runs each probe when due, the first ones a second apart so that they do not all land at once."""

    def __init__(self, probes: Sequence[Probe]) -> None:
        now = time.monotonic()
        self.probes = list(probes)
        self.due = [now + index for index in range(len(self.probes))]
        self.cpu_s: dict[str, float] = {}

    def run_due(self) -> None:
        for index, probe in enumerate(self.probes):
            if time.monotonic() >= self.due[index]:
                self.due[index] += probe.period_s
                before = _children_cpu_s()
                probe.run()
                self.cpu_s[probe.container] = self.cpu_s.get(probe.container, 0.0) + _children_cpu_s() - before


def watch(
    name: str,
    mains: Mapping[str, int],
    prober: Prober,
    *,
    interval: float,
    done: Callable[[float], bool],
) -> Window:
    """Sample every `interval` seconds until done(elapsed seconds) says so; `mains` maps each container to its
    main process."""
    start, started = time.time(), time.monotonic()
    before = {c: usage(pid) for c, pid in mains.items()}
    own_before = {c: cpu_times(pid).own for c, pid in mains.items()}
    probe_before = dict(prober.cpu_s)
    rss: dict[str, list[int]] = {c: [u.rss_kib] for c, u in before.items()}
    while True:
        prober.run_due()
        for container, pid in mains.items():
            rss[container].append(usage(pid).rss_kib)
        if done(time.monotonic() - started):
            break
        time.sleep(max(0.0, interval - (time.monotonic() - started) % interval))
    after = {c: usage(pid) for c, pid in mains.items()}
    figures = {}
    for container, pid in mains.items():
        probe_cpu = prober.cpu_s.get(container, 0.0) - probe_before.get(container, 0.0)
        figures[container] = Figures(
            cpu_s=after[container].cpu_s - before[container].cpu_s + probe_cpu,
            own_cpu_s=cpu_times(pid).own - own_before[container],
            probe_cpu_s=probe_cpu,
            rss_median_kib=round(statistics.median(rss[container])),
            rss_peak_kib=_peak(rss[container], before[container], after[container]),
            rss_growth_kib=_growth(rss[container]),
            write_bytes=after[container].write_bytes - before[container].write_bytes,
        )
    return Window(name, start, time.time(), figures)


def _peak(samples: list[int], before: Usage, after: Usage) -> int:
    """The highest sampled sum; or the main process's own peak when it rose in this phase (a sample can miss a
    short peak, VmHWM cannot)."""
    return max(samples) if after.hwm_kib <= before.hwm_kib else max(*samples, after.hwm_kib)


def _growth(samples: list[int]) -> int:
    quarter = max(1, len(samples) // 4)
    return round(statistics.median(samples[-quarter:]) - statistics.median(samples[:quarter]))


def for_seconds(seconds: float) -> Callable[[float], bool]:
    return lambda elapsed: elapsed >= seconds
