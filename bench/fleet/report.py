"""The fleet's tables, as printed by `make fleet`."""

from __future__ import annotations

from collections.abc import Sequence

from bench.fleet.fleet import Figures
from bench.fleet.measure import Readings


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows
    )
    return "\n".join(lines)


def scenarios_table(figures: Sequence[Figures]) -> str:
    header = [
        "scenario", "nodes", "outage s", "retry wait s", "drain s", "fresh s", "queue KiB/node/h",
        "ingest/s mean", "ingest/s peak", "centre CPU", "centre RSS MiB", "lost",
    ]  # fmt: skip
    rows = [
        [
            f.scenario,
            str(f.nodes_affected),
            f"{f.outage_s:.0f}",
            f"{f.retry_wait_s:.1f}",
            f"{f.drain_s:.1f}",
            f"{f.fresh_s:.1f}",
            f"{f.queue_bytes_per_hour / 1024:.0f}" if f.outage_s else "-",
            f"{f.load.rate_mean:.0f}",
            f"{f.load.rate_peak:.0f}",
            f"{f.load.cpu_cores:.2f}",
            f"{f.load.rss_mib:.0f}",
            str(f.lost),
        ]
        for f in figures
    ]
    return _table(header, rows)


def readings_table(readings: Sequence[Readings], what: str) -> str:
    rows = [[r.node, str(r.expected), str(r.stored), str(r.missing), "ok" if r.ok else "LOST"] for r in readings]
    return _table(["node", f"expected ({what})", "stored at centre", "missing", ""], rows)
