"""What the fleet tests share: a small, fast fleet's settings."""

from __future__ import annotations

from typing import Any

from bench.fleet.fleet import Settings


def small_fleet(**changes: Any) -> Settings:
    """3 nodes on Prometheus, push path (the DaemonSet's default), scraping and collecting every 2 s
    (instead of 15 s and 10 s) so a minute of outage holds enough readings to count; generous catch-up
    deadline for a loaded machine."""
    return Settings(
        nodes=3,
        store="prometheus",
        path="push",
        scrape_interval="2s",
        collector_interval="2s",
        cut_fraction=0.2,
        drain_timeout=240,
    )._replace(**changes)
