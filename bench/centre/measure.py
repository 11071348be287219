"""One step's figures: what the nodes offered and got stored, how long their writes took, and what the centre's
three processes (vmauth, the gate, the store) and the generator itself used meanwhile, from /proc."""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench.centre.load import Sent
from bench.fleet.centre import Centre, PrometheusCentre
from bench.procfs import cpu_times, status_kib
from testbed.exposition import metric_sum, parse_metrics
from testbed.net import http_get
from testbed.prometheus import PrometheusAPI

# The central Deployment's memory limits (deploy/kubernetes/central/deployment.yaml), MiB: past one, that
# container would be OOM-killed in production.
MEMORY_LIMIT_MIB = {"vmauth": 256, "gate": 512, "store": 2048}
ERRORS_GIVE = 0.01  # of a step's requests answered other than 204
STORED_GIVES = 0.95  # of the samples offered
LAG_GIVES_S = 10.0  # p99 from a sample's flush to its acknowledgement: the node's data that late
GATE_METRICS_TIMEOUT_S = 30.0
CPU_GIVES = 0.9  # cores: the gate is one Python process (one core); vmauth and the store could use more


def pids(centre: Centre) -> dict[str, int]:
    procs = {"vmauth": centre.ingest.vmauth, "gate": centre.ingest.gate, "store": centre.proc}
    found = {name: proc.pid for name, proc in procs.items() if proc is not None}
    found["generator"] = os.getpid()
    return found


def cpu(ids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_times(pid).own for name, pid in ids.items()}


def store_metrics(centre: Centre) -> dict[str, float]:
    if isinstance(centre, PrometheusCentre):
        return centre.central.metrics()
    assert isinstance(centre, PrometheusAPI)  # VictoriaCentre answers the same API itself
    return centre.metrics()


def store_series(centre: Centre) -> float:
    metrics = store_metrics(centre)
    if "prometheus_tsdb_head_series" in metrics:
        return metrics["prometheus_tsdb_head_series"]
    return metric_sum(metrics, "vm_new_timeseries_created_total")


def gate_stored(centre: Centre) -> float:
    """The gate's count of samples the store acknowledged; NaN when the gate does not answer its /metrics (its
    handler threads and the GIL busy with the nodes' writes) within GATE_METRICS_TIMEOUT_S."""
    url = f"http://127.0.0.1:{centre.ingest.gate_port}/metrics"
    try:
        text = http_get(url, timeout=GATE_METRICS_TIMEOUT_S).decode()
    except OSError:
        return float("nan")
    return metric_sum(parse_metrics(text), "edge_gate_samples_stored_total")


@dataclass(frozen=True, slots=True)
class Step:
    nodes: int
    seconds: float
    offered: float  # samples/s the nodes' schedules held
    stored: float  # samples/s the gate had the store acknowledge
    requests: int
    errors: Counter[int]  # status -> requests (0: no answer)
    latency_p50: float
    latency_p99: float
    lag_p99: float  # sample due -> acknowledged
    cores: dict[str, float]
    rss_mib: dict[str, float]
    series: float  # active series in the store
    ram_per_series_kib: float  # the store's RSS over its idle RSS, per series
    gave: str  # what gave at this step, or ""


def summarise(*, nodes: int, sent: Sequence[Sent], window: tuple[float, float], offered: float, stored: float,
              cores: dict[str, float], rss_mib: dict[str, float], series: float, base: tuple[float, float]) -> Step:
    """`base`: the store's RSS (MiB) and series before the first step."""
    low, high = window
    inside = [s for s in sent if low <= s.started < high]
    latencies = sorted(s.done - s.started for s in inside if s.status == 204)
    lags = sorted(s.done - s.due for s in inside if s.status == 204)
    errors = Counter(s.status for s in inside if s.status != 204)
    added = series - base[1]
    per_series = (rss_mib["store"] - base[0]) * 1024 / added if added > 0 else float("nan")
    step = Step(nodes, high - low, offered, stored, len(inside), errors, _quantile(latencies, 0.5),
                _quantile(latencies, 0.99), _quantile(lags, 0.99), cores, rss_mib, series, per_series, "")
    return dataclasses.replace(step, gave=what_gave(step))


def what_gave(step: Step) -> str:
    gave = []
    if step.requests == 0 or sum(step.errors.values()) > ERRORS_GIVE * step.requests:
        gave.append("rejected writes " + ",".join(f"{c or 'none'}x{n}" for c, n in sorted(step.errors.items())))
    if math.isnan(step.stored):
        gave.append("gate /metrics unanswered")
    elif step.stored < STORED_GIVES * step.offered:
        gave.append("stored < 95 % offered")
    if step.lag_p99 > LAG_GIVES_S:
        gave.append(f"lag p99 > {LAG_GIVES_S:g} s")
    gave += [f"{name} CPU" for name, c in step.cores.items() if c >= CPU_GIVES]
    gave += [f"{name} RSS over its limit" for name, limit in MEMORY_LIMIT_MIB.items()
             if step.rss_mib.get(name, 0.0) > limit]
    return "; ".join(gave)


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if q < 1 else values[-1]


def rss(ids: dict[str, int]) -> dict[str, float]:
    return {name: status_kib(pid, "VmRSS") / 1024 for name, pid in ids.items()}

