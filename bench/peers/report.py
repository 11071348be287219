"""The tables bench/peers prints: one row per approach, and the collector's targets judged in the same run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.peers.agents import TITLES
from bench.peers.measure import Figures


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def peers_table(steady: list[Figures], big: dict[str, Figures]) -> str:
    header = ["approach", "own CPU per run (ms)", "of which kernel (ms)", "steady RSS (MiB)", "peak RSS (MiB)",
              "runs at the rate", "readings in Prometheus", "first run after start (ms)",
              "1 MiB output: CPU per run (ms)", "1 MiB output: peak RSS (MiB)"]
    rows = []
    for f in steady:
        b = big.get(f.name)
        delivered = "-"
        if f.delivered is not None:
            delivered = f"{f.delivered}/{f.runs} ({100 * f.delivered / max(1, f.runs):.0f} %)"
        rows.append([TITLES[f.name], f"{f.cpu_ms:.3f}", f"{f.kernel_ms:.3f}", f"{f.steady_mib:.2f}",
                     f"{f.peak_mib:.2f}", f"{f.runs}/{f.expected}", delivered, _ms(f.first_ms),
                     f"{b.cpu_ms:.1f}" if b else "-", f"{b.peak_mib:.1f}" if b else "-"])
    return table(header, rows)


def growth_table(growth: list[Figures]) -> str:
    header = ["approach", "runs", "VmRSS at 10 % (MiB)", "at 50 %", "at the end", "growth, 50 % -> end (MiB)",
              "peak RSS (MiB)"]
    rows = [[TITLES[f.name], str(f.runs), *(f"{m:.3f}" for m in f.rss_marks),
             f"{f.rss_marks[2] - f.rss_marks[1]:+.3f}", f"{f.peak_mib:.3f}"] for f in growth]
    return table(header, rows)


GROWTH_TOLERANCE_MIB = 0.25  # bench/collector_bench.py's: allocator settling, not a leak
RSS_TARGET_MIB = 12.0
FIRST_RUN_TARGET_MS = 300.0


def targets_table(steady: list[Figures], growth: list[Figures]) -> tuple[str, int]:
    """Each target of issue 22 as measured/limit (<= 1 is met), for each edge-metrics mode; and the misses."""
    by_name = {f.name: f for f in steady}
    grown = {f.name: f for f in growth}
    collectd = by_name.get("collectd")
    rows, misses = [], 0
    for name in ("edge-push", "edge-textfile"):
        mine = by_name.get(name)
        if mine is None:
            continue
        judged = [
            ("own CPU per run <= collectd's", mine.cpu_ms, collectd.cpu_ms if collectd else math.nan, "ms"),
            ("steady RSS <= 12 MiB", mine.steady_mib, RSS_TARGET_MIB, "MiB"),
            ("first run <= 300 ms after start", mine.first_ms, FIRST_RUN_TARGET_MS, "ms"),
        ]
        if name in grown:
            marks = grown[name].rss_marks
            judged.append((f"no growth over {grown[name].runs} runs (second half <= {GROWTH_TOLERANCE_MIB} MiB)",
                           max(0.0, marks[2] - marks[1]), GROWTH_TOLERANCE_MIB, "MiB"))
        for what, value, limit, unit in judged:
            ratio = value / limit if limit and not math.isnan(limit) else math.nan
            verdict = "PASS" if ratio <= 1 else "MISS"
            misses += verdict == "MISS"
            rows.append([TITLES[name], what, f"{value:.3f} {unit}", f"{limit:.3f} {unit}", f"{ratio:.2f}", verdict])
    return table(["approach", "target", "measured", "limit", "ratio", "result"], rows), misses


def _ms(value: float) -> str:
    return "at the 1st scrape" if math.isnan(value) else f"{value:.0f}"
