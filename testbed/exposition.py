"""Prometheus exposition text read back: each server's /metrics and the collector's textfile."""

from __future__ import annotations

from collections.abc import Mapping


def parse_metrics(text: str) -> dict[str, float]:
    """Exposition text -> {'name{labels}': value}, the labels as written; good enough for vmagent's and
    node_exporter's /metrics and for the collector's output (its labels are sorted)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def metric_sum(metrics: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of every series of family `name` carrying all of `labels` (any other labels allowed)."""
    total = 0.0
    for series, value in metrics.items():
        if series != name and not series.startswith(name + "{"):
            continue
        if all(f'{key}="{val}"' in series for key, val in labels.items()):
            total += value
    return total
