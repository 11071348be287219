"""The tables `make bench-pod` prints (Markdown, so they go into docs/kubernetes.md as printed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.pod.manifest import ContainerSpec, Resources
from bench.pod.phases import Window

BUDGET_RSS_MIB = 64.0
BUDGET_CPU_SHARE = 0.01  # of one core
HOUR = 3600.0
MIB = 1024.0  # KiB per MiB
# Volumes that live in memory on a node (emptyDir medium: Memory): a flush there never reaches the SD card.
MEMORY_VOLUMES = ("textfile",)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cpu(millicores: float | None) -> str:
    return "-" if millicores is None else f"{millicores:g}m"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:g}Mi"


def _declared(resources: Resources) -> tuple[str, str]:
    requests = f"{_cpu(resources.request_cpu_m)} / {_mib(resources.request_memory_mib)}"
    limits = f"{_cpu(resources.limit_cpu_m)} / {_mib(resources.limit_memory_mib)}"
    return requests, limits


@dataclass(frozen=True, slots=True)
class Flushes:
    """fsync-family calls per container in one phase, by the volume they landed in."""

    by_container: Mapping[str, Counter[str]] | None  # None: not traced (--no-fsync-trace)

    def count(self, containers: Sequence[str], scale: float = 1.0) -> str:
        """`to disk (to tmpfs)` for these containers together, times `scale`."""
        if self.by_container is None:
            return "not traced"
        disk = memory = 0
        for name in containers:
            for volume, n in self.by_container.get(name, Counter()).items():
                if volume in MEMORY_VOLUMES:
                    memory += n
                else:
                    disk += n
        return f"{disk * scale:.0f} ({memory * scale:.0f})"


def bill_table(specs: Sequence[ContainerSpec], steady: Window, flushes: Flushes) -> str:
    """Each container in steady state beside what the manifest requests and limits, and the pod's total."""
    header = ["container", "requests cpu / memory", "limits cpu / memory", "RSS steady MiB", "RSS peak MiB",
              "CPU % of a core", "disk writes MiB/h", "fsyncs/h to disk (tmpfs)"]  # fmt: skip
    rows = []
    per_hour = HOUR / steady.seconds
    for spec in specs:
        fig = steady.containers[spec.name]
        requests, limits = _declared(spec.resources)
        rows.append([
            spec.name, requests, limits, f"{fig.rss_median_kib / MIB:.1f}", f"{fig.rss_peak_kib / MIB:.1f}",
            f"{100 * steady.share(spec.name):.2f}", f"{fig.write_bytes * per_hour / 2**20:.2f}",
            flushes.count([spec.name], per_hour),
        ])  # fmt: skip
    names = [spec.name for spec in specs]
    rows.append([
        "**pod**", "", "", f"{pod_rss_mib(steady, names):.1f}",
        f"{sum(steady.containers[n].rss_peak_kib for n in names) / MIB:.1f}",
        f"{100 * pod_share(steady, names):.2f}",
        f"{sum(steady.containers[n].write_bytes for n in names) * per_hour / 2**20:.2f}",
        flushes.count(names, per_hour),
    ])  # fmt: skip
    return markdown(header, rows)


def pod_rss_mib(window: Window, names: Sequence[str]) -> float:
    return sum(window.containers[n].rss_median_kib for n in names) / MIB


def pod_share(window: Window, names: Sequence[str]) -> float:
    return sum(window.share(n) for n in names)


def verdict(steady: Window, names: Sequence[str]) -> list[str]:
    """The budget of the whole pod: steady RSS and mean CPU, each MET or MISSED."""
    rss, share = pod_rss_mib(steady, names), pod_share(steady, names)
    return [
        f"budget RSS: pod {rss:.1f} MiB steady vs {BUDGET_RSS_MIB:g} MiB: "
        f"{'MET' if rss <= BUDGET_RSS_MIB else 'MISSED'}",
        f"budget CPU: pod {100 * share:.2f} % of one core vs {100 * BUDGET_CPU_SHARE:g} %: "
        f"{'MET' if share <= BUDGET_CPU_SHARE else 'MISSED'}",
    ]


def phases_table(names: Sequence[str], windows: Sequence[tuple[Window, Flushes]]) -> str:
    """Every container through every phase: CPU, peak RSS, how resident memory moved, bytes written and flushes in
    that phase."""
    header = ["phase", "seconds", "container", "CPU % of a core", "RSS peak MiB", "RSS growth KiB", "disk writes KiB",
              "fsyncs to disk (tmpfs)"]  # fmt: skip
    rows = []
    for window, flushes in windows:
        for name in names:
            fig = window.containers[name]
            rows.append([
                window.name, f"{window.seconds:.0f}", name, f"{100 * window.share(name):.2f}",
                f"{fig.rss_peak_kib / MIB:.1f}", f"{fig.rss_growth_kib:+d}", f"{fig.write_bytes / 1024:.0f}",
                flushes.count([name]),
            ])  # fmt: skip
    return markdown(header, rows)


def profile_table(rows: Sequence[tuple[str, str, str]]) -> str:
    return markdown(["container", "where it goes", "figure"], rows)
