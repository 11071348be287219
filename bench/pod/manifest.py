"""What the rendered manifests (the objects the pod is run from) say about the edge pod: each container's
requests, limits and liveness probe, and the intervals that set its load (the node's scripts in nodes.conf, the
collector's default interval, vmagent's scrape interval)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from edge_metrics.config import choose_entry, parse_config
from edge_metrics.durations import parse_duration
from tests.k8s.manifests import find

DAEMONSET = "node-exporter-arm64"
_MEMORY_UNITS = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}


@dataclass(frozen=True, slots=True)
class Resources:
    """One container's `resources`, in millicores and MiB (None where the manifest sets nothing)."""

    request_cpu_m: float | None
    request_memory_mib: float | None
    limit_cpu_m: float | None
    limit_memory_mib: float | None


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    resources: Resources
    probe_period_s: float | None  # livenessProbe.periodSeconds (the kubelet's default 10 s when unset)
    probe_kind: str | None  # exec or httpGet


@dataclass(frozen=True, slots=True)
class Intervals:
    """The periods of the pod's work, seconds."""

    scripts: tuple[tuple[str, float], ...]  # the node's scripts and their intervals (nodes.conf)
    heartbeat: float  # EDGE_DEFAULT_INTERVAL: the collector rewrites its file at least this often
    scrape: float  # vmagent's global scrape_interval (scrape.yml)
    probes: tuple[float, ...]

    def hyperperiod(self) -> float:
        """After this long every periodic job of the pod is back in the same phase: the load repeats."""
        periods = [*(i for _, i in self.scripts), self.heartbeat, self.scrape, *self.probes]
        millis = [round(p * 1000) for p in periods]
        return math.lcm(*millis) / 1000


def cpu_millicores(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def memory_mib(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)", quantity)
    if match is None:
        raise ValueError(f"memory quantity {quantity!r}: expected Ki, Mi or Gi")
    return float(match[1]) * _MEMORY_UNITS[match[2]]


def _resources(spec: dict[str, Any]) -> Resources:
    resources = spec.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})

    def cpu(section: dict[str, Any]) -> float | None:
        return cpu_millicores(section["cpu"]) if "cpu" in section else None

    def memory(section: dict[str, Any]) -> float | None:
        return memory_mib(section["memory"]) if "memory" in section else None

    return Resources(cpu(requests), memory(requests), cpu(limits), memory(limits))


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "DaemonSet", DAEMONSET)["spec"]["template"]["spec"]
    return spec


def containers(objects: list[dict[str, Any]]) -> list[ContainerSpec]:
    """The DaemonSet's containers in the manifest's order."""
    found = []
    for spec in pod_spec(objects)["containers"]:
        probe = spec.get("livenessProbe")
        kind = next((k for k in ("exec", "httpGet", "tcpSocket") if probe and k in probe), None)
        period = float(probe.get("periodSeconds", 10)) if probe else None
        found.append(ContainerSpec(spec["name"], _resources(spec), period, kind))
    return found


def _env(objects: list[dict[str, Any]], container: str) -> dict[str, str]:
    spec = next(c for c in pod_spec(objects)["containers"] if c["name"] == container)
    return {item["name"]: item["value"] for item in spec.get("env", []) if "value" in item}


def intervals(objects: list[dict[str, Any]], node: str) -> Intervals:
    """The shipped periods for `node`, from the collector's env, the nodes.conf and scrape.yml ConfigMaps."""
    heartbeat = parse_duration(_env(objects, "metric-sidecar")["EDGE_DEFAULT_INTERVAL"])
    nodes_conf = find(objects, "ConfigMap", "edge-metrics-config")["data"]["nodes.conf"]
    entries, _ = parse_config(nodes_conf, source="nodes.conf", default_interval=heartbeat)
    entry = choose_entry(entries, node)
    scripts = tuple((ref.name, ref.interval) for ref in entry.scripts) if entry else ()
    scrape_yml = yaml.safe_load(find(objects, "ConfigMap", "vmagent-config")["data"]["scrape.yml"])
    scrape = parse_duration(scrape_yml["global"]["scrape_interval"])
    probes = tuple(c.probe_period_s for c in containers(objects) if c.probe_period_s is not None)
    return Intervals(scripts, heartbeat, scrape, probes)
