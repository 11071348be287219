"""The tables bench/centre prints (markdown, as docs/scale.md shows them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.centre.load import Sent
from bench.centre.measure import Step
from bench.centre.profile import NodeProfile
from bench.centre.wire import Template

PROCESSES = ("vmauth", "gate", "store", "generator")


def profile_table(profile: NodeProfile, tmpls: Sequence[Template]) -> str:
    rows = ["| group (one scrape or one collector run) | series | every | samples/s | generator bytes/sample |",
            "| --- | --- | --- | --- | --- |"]
    for group, tmpl in zip(profile.groups, tmpls, strict=True):
        first = dict(group.series[0][0])
        name = f"job {first['job']}" if first.get("job") else f"pushed ({first.get('__name__', '?')}, ...)"
        size = len(b"".join(tmpl.pieces)) + 6 * tmpl.samples
        rows.append(f"| {name} | {len(group.series)} | {group.interval:g} s | {len(group.series) / group.interval:.2f} "
                    f"| {size / tmpl.samples:.1f} |")
    wire = profile.wire
    rows.append(f"| **the node** | **{profile.series}** | | **{profile.samples_per_s:.2f}** | |")
    return "\n".join(rows) + (
        f"\n\nThe real node's vmagent over the window: {wire.requests_per_s:.2f} requests/s, {wire.rows_per_s:.2f} "
        f"rows/s, {wire.bytes_per_row:.1f} bytes per row on the wire.")


def steps_table(steps: Sequence[Step]) -> str:
    head = ("| nodes | offered samples/s | stored samples/s | requests | errors | write p50 ms | write p99 ms "
            "| lag p99 s | " + " | ".join(f"{p} CPU" for p in PROCESSES) + " | "
            + " | ".join(f"{p} RSS MiB" for p in PROCESSES) + " | store series | store KiB/series | gave |")
    rows = [head, "|" + " --- |" * (head.count("|") - 1)]
    for s in steps:
        errors = ",".join(f"{code or 'none'}x{n}" for code, n in sorted(s.errors.items())) or "0"
        rows.append(
            f"| {s.nodes} | {s.offered:.0f} | {s.stored:.0f} | {s.requests} | {errors} | {_ms(s.latency_p50)} "
            f"| {_ms(s.latency_p99)} | {s.lag_p99:.1f} | "
            + " | ".join(f"{s.cores.get(p, 0.0):.2f}" for p in PROCESSES) + " | "
            + " | ".join(f"{s.rss_mib.get(p, 0.0):.0f}" for p in PROCESSES)
            + f" | {s.series:.0f} | {_num(s.ram_per_series_kib)} | {s.gave or '-'} |")
    return "\n".join(rows)


def drain_table(*, nodes: int, outage: float, sent: Sequence[Sent], seconds: float, cores: dict[str, float],
                rate_limit: float) -> str:
    stored = sum(s.samples for s in sent if s.status == 204)
    errors = sum(1 for s in sent if s.status != 204)
    nbytes = sum(s.nbytes for s in sent if s.status == 204)
    rows = ["| nodes | backlog per node | samples | blocks | refused attempts | drain s | samples/s | bytes/sample "
            "| rate limit bound s | " + " | ".join(f"{p} CPU" for p in PROCESSES) + " |",
            "|" + " --- |" * (10 + len(PROCESSES))]
    bound = nbytes / nodes / rate_limit if nodes else 0.0
    rows.append(f"| {nodes} | {_duration(outage)} | {stored} | {len(sent) - errors} | {errors} | {seconds:.1f} "
                f"| {stored / seconds if seconds else 0:.0f} | {nbytes / stored if stored else 0:.1f} | {bound:.1f} | "
                + " | ".join(f"{cores.get(p, 0.0):.2f}" for p in PROCESSES) + " |")
    return "\n".join(rows)


def extrapolation_table(*, rate: float, node_rate: float, bytes_per_sample: float, rate_limit: float,
                        fleet_sizes: Sequence[int], retry_s: float = 60.0) -> str:
    """Drain of an hour's backlog for N nodes: the slower of the centre's drain rate and each node's rate limit
    (less its live rate), plus vmagent's back-off."""
    backlog = node_rate * 3600
    per_node = backlog * bytes_per_sample / max(rate_limit - node_rate * bytes_per_sample, 1.0)
    rows = ["| nodes | backlog samples | centre-bound s | rate-limit-bound s "
            "| drain after 1 h (+ up to 60 s back-off) |",
            "| --- | --- | --- | --- | --- |"]
    for n in fleet_sizes:
        centre = n * backlog / rate if rate else math.inf
        rows.append(f"| {n} | {n * backlog:,.0f} | {centre:,.0f} | {per_node:.0f} | "
                    f"{_duration(max(centre, per_node) + retry_s)} |")
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
